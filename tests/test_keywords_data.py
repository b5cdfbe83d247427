"""Layout detection and splits on the real datasets."""
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from lstm_apps import runner
from lstm_apps.config import build_config
from lstm_apps.inputs.download import sha256_of
from pipelines.keywords import data as data_lib
from pipelines.keywords.task import TASK


def load(path, *overrides):
    cfg = build_config(TASK.presets_dir, "quick", overrides=list(overrides))
    return data_lib.load(cfg, path)


def test_fsdd_official_split(fsdd_dir):
    data = load(fsdd_dir)
    assert data.layout == "fsdd" and data.sample_rate == 8000 and data.num_samples == 8000
    assert data.labels == [str(d) for d in range(10)]
    assert {k: len(v) for k, v in data.files.items()} == {"train": 2400, "valid": 300, "test": 300}
    assert all(int(p.rsplit("_", 1)[1].split(".")[0]) < 5 for p in data.files["test"])
    assert Counter(data.targets["test"]) == {i: 30 for i in range(10)}
    assert data.silence == {}


def test_fsdd_leave_one_speaker_out(fsdd_dir):
    data = load(fsdd_dir, "data.split=speaker", "data.test_speaker=theo")
    assert len(data.files["test"]) == 500 and all("_theo_" in p for p in data.files["test"])
    assert not any("_theo_" in p for p in data.files["train"] + data.files["valid"])


def test_speech_commands_core_12_classes(speech_commands_core_dir):
    data = load(speech_commands_core_dir)
    assert data.layout == "speech_commands" and data.sample_rate == 16000
    assert data.labels == list(data_lib.CORE_WORDS) + ["_unknown_", "_silence_"]
    assert {k: len(v) for k, v in data.files.items()} == {"train": 2559, "valid": 442, "test": 392}
    assert len(data.silence["test"]) == round(0.1 * 392)
    assert data.noise_bank.shape[0] == 6
    # silence differs between splits (cut from different parts of the noise recordings)
    assert not np.allclose(data.silence["train"][0], data.silence["test"][0])
    # cut in the graph when read: the clips a direct NumPy cut of the test noise gives (the reference pipeline's
    # recipe: a random recording, a random start, a random volume in [0, 1], zero-padded to 1 s)
    silence = data.silence["test"]
    streamed = np.stack(list(silence.dataset().as_numpy_iterator()))
    rng, noise = np.random.default_rng(data_lib.SPLITS.index("test")), []
    for path in data.noise_files:
        samples = data_lib.read_audio_py(path)[0]
        noise.append(samples[int(0.9 * len(samples)):])
    for clip in streamed:
        source = noise[rng.integers(len(noise))]
        start = rng.integers(0, max(len(source) - 16000, 0) + 1)
        piece = source[start:start + 16000] * rng.uniform(0, 1)
        np.testing.assert_allclose(clip[:len(piece)], piece, rtol=1e-6, atol=1e-7)
        assert not clip[len(piece):].any()
    assert streamed.shape == (len(silence), 16000) and streamed.std() > 0


def test_speech_commands_sample_official_lists_and_all_words(speech_commands_sample_dir):
    data = load(speech_commands_sample_dir, "data.words=all")
    assert len(data.labels) == 30 and "_silence_" not in data.labels
    assert {k: len(v) for k, v in data.files.items()} == {"train": 205, "valid": 44, "test": 51}
    core = load(speech_commands_sample_dir)
    assert core.labels[-2:] == ["_unknown_", "_silence_"]
    unknown = core.labels.index("_unknown_")
    assert sum(t == unknown for t in core.targets["train"]) > 100  # 20 of the 30 words are "unknown"


def test_which_set_is_speaker_stable():
    assert data_lib._which_set("0a7c2a8d_nohash_0.wav") == data_lib._which_set("0a7c2a8d_nohash_4.wav")
    counts = Counter(data_lib._which_set(f"{i:08x}_nohash_0.wav") for i in range(2000))
    assert 0.05 < counts["test"] / 2000 < 0.15 and 0.05 < counts["valid"] / 2000 < 0.15


def test_downloader_fetches_and_extracts_into_the_cache(tmp_path, fsdd_dir, monkeypatch):
    """The real keras.utils.get_file path, fed a file:// copy of the FSDD release archive layout."""
    import tarfile

    archive = tmp_path / "v1.0.10.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("0_theo_0.wav", "1_theo_5.wav", "2_theo_10.wav"):
            tar.add(fsdd_dir / "recordings" / name, f"free-spoken-digit-dataset-1.0.10/recordings/{name}")
    monkeypatch.setitem(data_lib.DOWNLOADS, "fsdd", (archive.as_uri(), "free-spoken-digit-dataset-1.0.10",
                                                    sha256_of(archive)))
    (tmp_path / "cache").mkdir()
    folder = data_lib.download("fsdd", cache_dir=str(tmp_path / "cache"))
    assert sorted(p.name for p in (tmp_path / "cache").rglob("*.wav")) == ["0_theo_0.wav", "1_theo_5.wav",
                                                                           "2_theo_10.wav"]
    cfg = build_config(TASK.presets_dir, "quick")  # data.dir null: the downloader's folder is used
    monkeypatch.setattr(data_lib, "download", lambda name: folder)
    data_dir = runner.resolve_data_dir(TASK, cfg)
    assert data_dir == Path(folder).resolve() and data_lib.load(cfg, data_dir).layout == "fsdd"
    assert cfg["data"]["dir"] is None, "the config stays as the user gave it"


def test_downloader_failure_is_one_clear_line(monkeypatch, tmp_path):
    from lstm_apps.errors import DataError
    monkeypatch.setitem(data_lib.DOWNLOADS, "fsdd", ((tmp_path / "missing.tar.gz").as_uri(), "", "0" * 64))
    (tmp_path / "cache").mkdir()
    with pytest.raises(DataError, match="could not download fsdd .* pass --data-dir"):
        data_lib.download("fsdd", cache_dir=str(tmp_path / "cache"))
