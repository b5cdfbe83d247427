"""Captions in the S2VT layout: the real MSVD split and the generated clips read by one reader; bad lines named."""
import pytest

from lstm_apps.errors import DataError
from pipelines.captioning import data, synthetic


def test_real_msvd_s2vt_split_has_the_canonical_sizes():
    from conftest import shared
    captions = data.load(shared("msvd") / "s2vt_split")
    sizes = {split: len(refs) for split, refs in captions.references.items()}
    assert sizes == {"train": 1200, "val": 100, "test": 670}  # S2VT's 1,200 / 100 / 670 clips
    sentences = sum(len(r) for refs in captions.references.values() for r in refs.values())
    assert sentences == 48774 + 4290 + 27763  # every line of the three files
    assert captions.references["test"]["eyhzdC936uk_15_27"][0] == "a boy playing with dog" and all(
        s == s.lower() for s in captions.references["train"]["-4wsuPCjDBc_5_15"])


def test_generated_clips_read_with_the_same_reader(tmp_path):
    synthetic.generate(tmp_path, clips_per_combination=1, frames=4, size=32)
    captions = data.load(tmp_path)
    assert len(captions.references["train"]) == 40 and len(captions.references["test"]) == 20
    clip, refs = next(iter(captions.references["test"].items()))
    assert (tmp_path / "videos" / f"{clip}.mp4").is_file() and len(refs) == 3


def test_bad_caption_lines_name_file_and_line(tmp_path):
    (tmp_path / data.MAP_FILE).write_text("clip_a vid1\nclip_b vid2\n")
    (tmp_path / "sents_train_lc_nopunc.txt").write_text("vid1\ta dog runs\nvid2 no tab here\n")
    with pytest.raises(DataError, match=r"sents_train_lc_nopunc\.txt:2: expected 'vidN<TAB>sentence'"):
        data.load(tmp_path, splits=("train",))
    (tmp_path / "sents_train_lc_nopunc.txt").write_text("vid1\ta dog runs\nvid9\ta cat sleeps\n")
    with pytest.raises(DataError, match=r":2: id 'vid9' is not in youtube_video_to_id_mapping\.txt"):
        data.load(tmp_path, splits=("train",))
    with pytest.raises(DataError, match="no youtube_video_to_id_mapping.txt"):
        data.load(tmp_path / "nowhere")
