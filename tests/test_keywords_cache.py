"""Keywords from prepared shards (data.cache): the same clips and the same training as from the files, a changed
file rebuilds the cache, a bad file stops the prepare in one line or is skipped and counted."""
import json
import shutil

import numpy as np
import pytest
import soundfile

from lstm_apps.cli import main
from lstm_apps.config import build_config
from lstm_apps.inputs import shards
from pipelines.keywords import data as data_lib
from pipelines.keywords import pipeline
from pipelines.keywords.task import TASK
from conftest import assert_cache_trains_like_the_files, shared


def fsdd_copy(tmp_path, recordings=12, speakers=("george", "jackson")):
    """Real copies (not links: the cache fingerprints each file's size and time) of a few FSDD recordings."""
    folder = tmp_path / "fsdd" / "recordings"
    folder.mkdir(parents=True)
    for path in (shared("fsdd") / "recordings").glob("*.wav"):
        digit, speaker, index = path.stem.split("_")
        if speaker in speakers and int(index) < recordings:
            shutil.copy2(path, folder / path.name)
    return folder.parent


def config(cache, *overrides):
    return build_config(TASK.presets_dir, "quick", overrides=[f"data.cache={cache}", *overrides])


def clips(dataset):
    return [(w, int(y)) for w, y in dataset.as_numpy_iterator()]


def test_prepared_clips_equal_the_decoded_files_and_are_reused(tmp_path):
    cfg = config(tmp_path / "cache")
    data = data_lib.load(cfg, fsdd_copy(tmp_path), check_files=False)
    manifests = pipeline.prepare_splits(data, cfg, tmp_path / "cache", data_lib.SPLITS)
    assert {split: m.examples for split, m in manifests.items()} == {"train": 40, "valid": 100, "test": 100}
    for split in data_lib.SPLITS:
        prepared, decoded = clips(pipeline.waveform_dataset(data, split)), clips(pipeline.decoded_clips(data, split))
        assert len(prepared) == len(decoded) and all(
            a[1] == b[1] and np.array_equal(a[0], b[0]) for a, b in zip(prepared, decoded))
        assert list(pipeline.split_targets(data, split)) == [label for _, label in decoded]
    shard = tmp_path / "cache" / "train" / manifests["train"].shards[0]
    written = shard.stat().st_mtime_ns
    pipeline.prepare_splits(data, cfg, tmp_path / "cache", ["train"])
    assert shard.stat().st_mtime_ns == written  # same files, same settings: nothing written again


def test_a_bounded_shuffle_buffer_serves_every_clip_once_per_epoch_in_new_orders(tmp_path):
    cfg = config(tmp_path / "cache", "train.shuffle_buffer=8")
    data = data_lib.load(cfg, fsdd_copy(tmp_path, recordings=30), check_files=False)
    pipeline.prepare_splits(data, cfg, tmp_path / "cache", ["train"])
    dataset = pipeline.shuffled_clips(data, cfg)
    epochs = [[label for _, label in clips(dataset)] for _ in range(3)]
    truth = sorted(data.targets["train"])
    assert all(sorted(epoch) == truth for epoch in epochs) and len({tuple(e) for e in epochs}) == 3


def test_a_changed_file_rebuilds_the_cache(tmp_path):
    folder = fsdd_copy(tmp_path)
    cfg = config(tmp_path / "cache")
    data = data_lib.load(cfg, folder, check_files=False)
    pipeline.prepare_splits(data, cfg, tmp_path / "cache", ["train"])
    changed = data.files["train"][0]
    samples, rate = soundfile.read(changed, dtype="int16")
    soundfile.write(changed, samples // 2, rate, subtype="PCM_16")
    data = data_lib.load(cfg, folder, check_files=False)
    pipeline.prepare_splits(data, cfg, tmp_path / "cache", ["train"])
    first = clips(pipeline.waveform_dataset(data, "train"))[0][0]
    np.testing.assert_allclose(first[: len(samples)], (samples // 2) / 32768.0, atol=1e-6)  # the new content
    settings = config(tmp_path / "cache", "data.clip_seconds=0.5")
    data = data_lib.load(settings, folder, check_files=False)
    pipeline.prepare_splits(data, settings, tmp_path / "cache", ["train"])
    assert clips(pipeline.waveform_dataset(data, "train"))[0][0].shape == (4000,)  # other settings: rebuilt too


def test_a_bad_file_stops_the_prepare_in_one_line_or_is_skipped_and_counted(tmp_path, capsys):
    folder = fsdd_copy(tmp_path)
    recordings = sorted((folder / "recordings").glob("*_1[01].wav"))  # training clips (index >= 10)
    recordings[0].write_bytes(b"RIFF....not audio at all")
    truncated = recordings[1].read_bytes()
    recordings[1].write_bytes(truncated[: len(truncated) // 2 + 1])  # the header promises samples not there
    args = ["keywords", "prepare", "--data-dir", str(folder), "--data-cache", str(tmp_path / "cache")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(recordings[0]) in err[0] and "Traceback" not in err[0], err
    manifest = shards.Manifest.load(tmp_path / "cache" / "train")
    assert not manifest.complete and manifest.shards == []  # nothing half-written counts as a shard
    assert main(args + ["--set", "data.skip_bad_files=true"]) == 0
    out, err = capsys.readouterr()
    assert str(recordings[0]) in err and str(recordings[1]) in err and "Traceback" not in err
    assert "prepared train: 38 examples in 1 shards" in out and "2 files skipped" in out
    manifest = json.loads((tmp_path / "cache" / "train" / shards.MANIFEST_FILE).read_text())
    assert manifest["complete"] and [s for s, _ in manifest["skipped"]] == [str(r) for r in recordings[:2]]


def test_training_from_the_cache_equals_training_from_the_files(tmp_path):
    assert_cache_trains_like_the_files("keywords", fsdd_copy(tmp_path), tmp_path, ["model.units=16", "model.layers=1"])


def test_prepared_speech_commands_hold_its_silence_clips_too(speech_commands_sample_dir, tmp_path):
    cfg = config(tmp_path / "cache")
    data = data_lib.load(cfg, speech_commands_sample_dir, check_files=False)
    files_only = list(pipeline.split_targets(data, "test"))
    pipeline.prepare_splits(data, cfg, tmp_path / "cache", ["test"])
    prepared, decoded = clips(pipeline.waveform_dataset(data, "test")), clips(pipeline.decoded_clips(data, "test"))
    silence_id = data.labels.index(data_lib.SILENCE)
    assert sum(label == silence_id for _, label in prepared) == len(data.silence["test"]) > 0
    assert [label for _, label in prepared] == [label for _, label in decoded] == files_only
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(prepared, decoded))


def test_under_multi_worker_each_worker_streams_its_own_shards(tmp_path):
    """Workers 0 and 1 of 2 read disjoint shards and bring half of every global batch, the same number of
    batches each (what a collective per step needs), together covering the split."""
    from lstm_apps.distribute import PerWorker

    cfg = config(tmp_path / "cache", "train.shuffle_buffer=16", "data.shard_size=10", "train.batch_size=8",
                 "augment.speed_change=0", "augment.time_shift_ms=0", "augment.noise_probability=0")
    data = data_lib.load(cfg, fsdd_copy(tmp_path), check_files=False)
    manifest = pipeline.prepare_splits(data, cfg, tmp_path / "cache", ["train"])["train"]
    assert manifest.examples == 40 and len(manifest.shards) == 4
    seen = []
    for worker in (0, 1):
        batches = pipeline.training_dataset(data, cfg, share=(worker, 2))
        assert isinstance(batches, PerWorker)
        epoch = list(batches.dataset.as_numpy_iterator())
        assert len(epoch) == 40 // 8 and all(len(labels) == 4 for _, labels in epoch)
        seen.append({waveform.tobytes() for waveforms, _ in epoch for waveform in waveforms})
    assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == 40
    assert not isinstance(pipeline.training_dataset(data, cfg, share=(0, 1)), PerWorker)  # one worker: global batches
