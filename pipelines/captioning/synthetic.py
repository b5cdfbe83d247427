"""Generated captioning clips: coloured shapes moving in a direction, written as real encoded video files (PyAV),
with template captions, in the MSVD S2VT layout so the same reader takes them:

  videos/<clip>.<ext>                     the clips (H.264 .mp4 by default; .avi = MPEG-4, .webm = VP9)
  youtube_video_to_id_mapping.txt         "<clip> vidN" per line
  sents_{train,val,test}_lc_nopunc.txt    "vidN<TAB>sentence", several references per clip

The held-out splits use (colour-shape pair, direction) combinations never seen in training (every pair and every
direction is seen, just not together), so a model must compose what it learned instead of recalling whole clips.

  python -m pipelines.captioning.synthetic OUT_DIR [--clips-per-combination 6] [--frames 16] [--size 64]
"""
import argparse
import itertools
from pathlib import Path

import numpy as np

from lstm_apps.inputs.video import write_video

COLOURS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (50, 80, 235), "yellow": (235, 215, 40),
           "white": (240, 240, 240)}
SHAPES = ("circle", "square", "triangle", "cross")
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
PHRASES = {"left": "to the left", "right": "to the right", "up": "up", "down": "down"}
TEMPLATES = ("a {colour} {shape} moves {phrase}", "a {colour} {shape} is moving {phrase}",
             "the {colour} {shape} slides {phrase}")


def split_of(colour, shape, direction):
    """Each colour-shape pair is seen in training moving two ways; its third direction is held out for validation
    and its fourth for test (which ones rotates from pair to pair): every colour, shape, pair and direction is
    seen in training, but never these (pair, direction) combinations."""
    turn = (list(COLOURS).index(colour) + SHAPES.index(shape)) % len(DIRECTIONS)
    held_out = {list(DIRECTIONS)[turn]: "test", list(DIRECTIONS)[(turn + 1) % len(DIRECTIONS)]: "val"}
    return held_out.get(direction, "train")


def captions(colour, shape, direction):
    return [t.format(colour=colour, shape=shape, phrase=PHRASES[direction]) for t in TEMPLATES]


def shape_mask(shape, size, centre, radius):
    y, x = np.mgrid[:size, :size]
    cy, cx = centre
    if shape == "circle":
        return (y - cy) ** 2 + (x - cx) ** 2 <= radius ** 2
    if shape == "square":
        return (abs(y - cy) <= radius * 0.85) & (abs(x - cx) <= radius * 0.85)
    if shape == "cross":
        return ((abs(y - cy) <= radius * 0.3) & (abs(x - cx) <= radius)) | \
            ((abs(x - cx) <= radius * 0.3) & (abs(y - cy) <= radius))
    # triangle pointing up: below the two slanted edges, above the base
    return (y <= cy + radius * 0.8) & (abs(x - cx) <= (y - (cy - radius)) * 0.6)


def render(colour, shape, direction, frames, size, rng):
    """uint8 [frames, size, size, 3]: the shape crossing the frame in `direction`, from a random start, over a
    noisy background."""
    radius = size // 6
    dx, dy = DIRECTIONS[direction]
    travel = size - 4 * radius
    start = rng.uniform(2 * radius, size - 2 * radius, size=2)
    start[0 if dx else 1] = 2 * radius if (dx or dy) > 0 else size - 2 * radius  # start on the far side
    clip = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        step = travel * t / max(frames - 1, 1)
        centre_x, centre_y = start[0] + dx * step, start[1] + dy * step
        image = rng.normal(60, 8, (size, size, 3)).clip(0, 255)
        image[shape_mask(shape, size, (centre_y, centre_x), radius)] = COLOURS[colour]
        clip[t] = image.astype(np.uint8)
    return clip


def generate(out_dir, clips_per_combination=6, frames=16, size=64, suffix=".mp4", seed=0):
    """Write every colour x shape x direction clip `clips_per_combination` times; returns {split: clips}."""
    out_dir = Path(out_dir)
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    mapping, sentences, counts = [], {split: [] for split in ("train", "val", "test")}, {}
    combinations = itertools.product(COLOURS, SHAPES, DIRECTIONS, range(clips_per_combination))
    for number, (colour, shape, direction, copy) in enumerate(combinations, start=1):
        clip, video_id = f"{colour}_{shape}_{direction}_{copy}", f"vid{number}"
        write_video(out_dir / "videos" / f"{clip}{suffix}", render(colour, shape, direction, frames, size, rng))
        split = split_of(colour, shape, direction)
        mapping.append(f"{clip} {video_id}")
        sentences[split] += [f"{video_id}\t{caption}" for caption in captions(colour, shape, direction)]
        counts[split] = counts.get(split, 0) + 1
    (out_dir / "youtube_video_to_id_mapping.txt").write_text("\n".join(mapping) + "\n", encoding="utf-8")
    for split, lines in sentences.items():
        (out_dir / f"sents_{split}_lc_nopunc.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--clips-per-combination", type=int, default=6)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=64, help="frame height and width (even)")
    parser.add_argument("--format", default=".mp4", choices=(".mp4", ".avi", ".webm"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    counts = generate(args.out_dir, args.clips_per_combination, args.frames, args.size, args.format, args.seed)
    print(f"wrote {sum(counts.values())} clips to {args.out_dir}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
