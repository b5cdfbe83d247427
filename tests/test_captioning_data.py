"""Captions in the S2VT layout: the real MSVD split and the generated clips read by one reader; bad lines named."""
import pytest

from lstm_apps.errors import DataError
from pipelines.captioning import data, synthetic


def test_real_msvd_s2vt_split_has_the_canonical_sizes():
    from conftest import shared
    captions = data.read_captions(shared("msvd") / "s2vt_split")
    sizes = {split: len(refs) for split, refs in captions.references.items()}
    assert sizes == {"train": 1200, "val": 100, "test": 670}  # S2VT's 1,200 / 100 / 670 clips
    sentences = sum(len(r) for refs in captions.references.values() for r in refs.values())
    assert sentences == 48774 + 4290 + 27763  # every line of the three files
    assert captions.references["test"]["eyhzdC936uk_15_27"][0] == "a boy playing with dog" and all(
        s == s.lower() for s in captions.references["train"]["-4wsuPCjDBc_5_15"])


def test_generated_clips_read_with_the_same_reader(tmp_path):
    synthetic.generate(tmp_path, clips_per_combination=1, frames=4, size=32)
    captions = data.read_captions(tmp_path)
    assert len(captions.references["train"]) == 40 and len(captions.references["test"]) == 20
    clip, refs = next(iter(captions.references["test"].items()))
    assert (tmp_path / "videos" / f"{clip}.mp4").is_file() and len(refs) == 3


def test_bad_caption_lines_name_file_and_line(tmp_path):
    (tmp_path / data.MAP_FILE).write_text("clip_a vid1\nclip_b vid2\n")
    (tmp_path / "sents_train_lc_nopunc.txt").write_text("vid1\ta dog runs\nvid2 no tab here\n")
    with pytest.raises(DataError, match=r"sents_train_lc_nopunc\.txt:2: expected 'vidN<TAB>sentence'"):
        data.read_captions(tmp_path, splits=("train",))
    (tmp_path / "sents_train_lc_nopunc.txt").write_text("vid1\ta dog runs\nvid9\ta cat sleeps\n")
    with pytest.raises(DataError, match=r":2: id 'vid9' is not in youtube_video_to_id_mapping\.txt"):
        data.read_captions(tmp_path, splits=("train",))
    with pytest.raises(DataError, match="no youtube_video_to_id_mapping.txt"):
        data.read_captions(tmp_path / "nowhere")


def test_reading_the_data_leaves_the_config_alone_and_records_the_resolved_features(tmp_path, monkeypatch):
    """A relative data.features is resolved where train runs; metadata.json (the data's facts) keeps it, so evaluate
    reads the same features from anywhere, and the config stays as the user gave it."""
    import copy

    import numpy as np

    from lstm_apps.config import build_config
    from lstm_apps.runner import TRAINING_SPLITS
    from pipelines.captioning.task import TASK

    synthetic.generate(tmp_path / "clips", clips_per_combination=1, frames=4, size=32)
    (tmp_path / "features").mkdir()
    for clip in (line.split()[0] for line in (tmp_path / "clips" / data.MAP_FILE).read_text().splitlines()):
        np.save(tmp_path / "features" / f"{clip}.npy", np.full((8, 16), len(clip), np.float32))
    monkeypatch.chdir(tmp_path)
    cfg = build_config(TASK.presets_dir, "quick", overrides=["data.features=features", "features.backbone=vgg16"])
    given = copy.deepcopy(cfg)
    trained = TASK.read_data(cfg, tmp_path / "clips", TRAINING_SPLITS)
    assert cfg == given
    facts = trained.facts
    assert facts["features"] == str(tmp_path / "features") and facts["clips"] == {"train": 40, "valid": 20}
    assert facts["clip_shape"] == [8, 16] and trained.references("valid") == data.read_captions(
        tmp_path / "clips", ("val",)).references["val"]
    monkeypatch.chdir(tmp_path / "clips")  # evaluate elsewhere: "features" is not there, the recorded path is
    evaluated = TASK.read_data(cfg, tmp_path / "clips", ("test",))
    assert evaluated.arrays == {}  # read in score, from what the run recorded
    data.read_arrays(cfg, evaluated, "test", tail=(16,), recorded=facts)
    assert len(evaluated.arrays["test"]) == 20 and cfg == given
    with pytest.raises(DataError, match="no such folder"):
        data.read_arrays(cfg, evaluated, "test", tail=(16,))
