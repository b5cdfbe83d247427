"""Video decoding with PyAV on real MSVD clips and on encoded round trips, and the generated captioning clips."""
import numpy as np
import pytest

from lstm_apps.errors import DataError
from lstm_apps.inputs.video import read_frames, sample_indices, write_video
from pipelines.captioning import synthetic


def test_sample_indices_are_uniform_and_repeat_frames_of_short_clips():
    assert sample_indices(80, 80).tolist() == list(range(80))
    indices = sample_indices(421, 80)
    assert indices[0] == 2 and indices[-1] == 418 and (np.diff(indices) >= 5).all()
    assert sample_indices(3, 7).tolist() == [0, 0, 1, 1, 1, 2, 2]



def test_real_msvd_clip_decodes_to_sampled_resized_rgb_frames():
    from conftest import shared
    import av

    path = shared("msvd") / "sample_clips" / "3qqEKTPxLNs_1_15.avi"
    with av.open(str(path)) as container:  # every frame, at full size, the plain PyAV way
        every = [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]
    frames = read_frames(path, 80)
    assert frames.shape == (80, 360, 480, 3) and frames.dtype == np.uint8
    for k, index in enumerate(sample_indices(len(every), 80)):
        np.testing.assert_array_equal(frames[k], every[index])
    small = read_frames(path, 8, size=(224, 224))
    assert small.shape == (8, 224, 224, 3)
    # resizing keeps the picture: the mean colour of each frame barely moves
    np.testing.assert_allclose(small.mean(axis=(1, 2)), frames[sample_indices(80, 8)].mean(axis=(1, 2)), atol=4.0)


@pytest.mark.parametrize("suffix", [".mp4", ".avi", ".webm"])
def test_encoded_clips_decode_close_to_their_pixels(tmp_path, suffix):
    clip = synthetic.render("blue", "circle", "right", frames=12, size=64, rng=np.random.default_rng(0))
    path = write_video(tmp_path / f"clip{suffix}", clip)
    decoded = read_frames(path, 12)
    mse = np.mean((decoded.astype(float) - clip.astype(float)) ** 2)
    # PSNR in dB: lossy (4:2:0 chroma blurs the coloured edges, the noisy background is smoothed), the same picture
    assert 10 * np.log10(255 ** 2 / mse) > 26, suffix


def test_bad_video_files_are_one_clear_error(tmp_path):
    (tmp_path / "text.avi").write_bytes(b"this is not a video")
    (tmp_path / "empty.mp4").write_bytes(b"")
    for name in ("text.avi", "empty.mp4", "missing.webm"):
        with pytest.raises(DataError, match=name):
            read_frames(tmp_path / name, 8)


def centroid_x_y(frame, colour):
    mask = (np.abs(frame.astype(int) - colour).sum(-1) < 90)
    ys, xs = np.nonzero(mask)
    return xs.mean(), ys.mean()


def test_generated_clips_show_what_their_captions_say(tmp_path):
    counts = synthetic.generate(tmp_path, clips_per_combination=1, frames=10, size=64)
    assert counts == {"train": 40, "val": 20, "test": 20}  # 20 colour-shape pairs x 2 / 1 / 1 directions
    ids = dict(line.split() for line in (tmp_path / "youtube_video_to_id_mapping.txt").read_text().splitlines())
    by_split = {}
    for split in ("train", "val", "test"):
        for line in (tmp_path / f"sents_{split}_lc_nopunc.txt").read_text().splitlines():
            video_id, sentence = line.split("\t")
            by_split.setdefault(split, {}).setdefault(video_id, []).append(sentence)
    assert all(len(refs) == 3 for refs in by_split["train"].values())
    clip_of = {video_id: clip for clip, video_id in ids.items()}
    combos = lambda split: {tuple(clip_of[v].split("_")[:3]) for v in by_split[split]}  # noqa: E731
    assert not combos("train") & combos("test") and not combos("train") & combos("val")  # unseen combinations
    assert {c[:2] for c in combos("test")} == {c[:2] for c in combos("train")}  # of pairs all seen in training
    moves = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
    for clip, video_id in ids.items():
        colour, shape, direction, _ = clip.split("_")
        frames = read_frames(tmp_path / "videos" / f"{clip}.mp4", 10)
        (x0, y0), (x1, y1) = centroid_x_y(frames[0], synthetic.COLOURS[colour]), \
            centroid_x_y(frames[-1], synthetic.COLOURS[colour])
        dx, dy = moves[direction]
        assert (x1 - x0) * dx + (y1 - y0) * dy > 15, clip  # it travels the stated way
        assert abs((x1 - x0) * dy) + abs((y1 - y0) * dx) < 4, clip  # and not sideways
