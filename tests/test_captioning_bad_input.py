"""Bad captioning input through the CLI: one line naming the file (and line), exit code 2, nothing written."""
import numpy as np
import pytest

from lstm_apps.cli import main
from pipelines.captioning import data, synthetic


@pytest.fixture
def clips(tmp_path):
    folder = tmp_path / "clips"
    synthetic.generate(folder, clips_per_combination=1, frames=4, size=32)
    return folder


def error_of(args, capsys):
    capsys.readouterr()
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def train_error(clips, tmp_path, capsys, *overrides):
    args = ["captioning", "train", "--data-dir", str(clips), "--run-dir", str(tmp_path / "run")]
    line = error_of(args + [x for o in overrides for x in ("--set", o)], capsys)
    assert not (tmp_path / "run").exists()  # rejected before anything is written
    return line


def test_unreadable_and_empty_videos_are_named(clips, tmp_path, capsys):
    broken = clips / "videos" / "red_circle_up_0.mp4"
    broken.write_bytes(b"this is not a video" * 100)
    line = train_error(clips, tmp_path, capsys)
    assert f"{broken}: not a readable video" in line
    broken.write_bytes(b"")
    assert f"{broken}: not a readable video" in train_error(clips, tmp_path, capsys)


def test_features_of_the_wrong_shape_are_named(clips, tmp_path, capsys):
    folder = tmp_path / "features"
    folder.mkdir()
    for clip in (line.split()[0] for line in (clips / data.MAP_FILE).read_text().splitlines()):
        np.save(folder / f"{clip}.npy", np.zeros((8, 16), np.float32))
    np.save(folder / "red_circle_up_0.npy", np.zeros((5, 16), np.float32))
    line = train_error(clips, tmp_path, capsys, f"data.features={folder}", "features.backbone=vgg16")
    assert line.endswith(f"{folder / 'red_circle_up_0.npy'}: features of shape (5, 16); expected (8, 16)")


def test_caption_line_without_tab_and_unknown_id_name_file_and_line(clips, tmp_path, capsys):
    sentences = clips / "sents_train_lc_nopunc.txt"
    lines = sentences.read_text().splitlines()
    sentences.write_text("\n".join([*lines[:2], "vid1 a red circle moves up", *lines[2:]]) + "\n")
    assert train_error(clips, tmp_path, capsys).endswith(
        f"{sentences}:3: expected 'vidN<TAB>sentence', found 'vid1 a red circle moves up'")
    sentences.write_text("\n".join([*lines[:4], "vid9999\ta red circle moves up"]) + "\n")
    assert train_error(clips, tmp_path, capsys).endswith(
        f"{sentences}:5: id 'vid9999' is not in {data.MAP_FILE}")


def test_predict_names_a_bad_features_file_and_a_missing_input(tmp_path, capsys):
    from pipelines.captioning.task import check_inputs
    from lstm_apps.errors import DataError

    with pytest.raises(DataError, match=r"clip\.txt: expected a video file"):
        check_inputs([str(tmp_path / "clip.txt")])
    with pytest.raises(DataError, match=r"gone\.mp4: no such file"):
        check_inputs([str(tmp_path / "gone.mp4")])
