"""Keywords at Speech Commands size: prepare N one-second 16 kHz clips once, then stream them with bounded memory.

The clips are the real Speech Commands core clips (../shared/data/speech_commands_core) linked under distinct names
until there are --clips of them (speaker ids made distinct per repetition, so the dataset's own speaker hash splits
them 80/10/10), plus its background noise. Then:

1. prepare: `lstm-apps keywords prepare --data-cache` in a child process (decode FLAC, fit to 1 s, write shards):
   wall time, clips/s, cache size.
2. the training input pipeline from the cache (`pipelines.keywords.pipeline.training_dataset`: shards shuffled and
   interleaved, a shuffle buffer of --shuffle-buffer clips, speed change + time shift + noise mixing on the fly,
   batches of the preset's size) iterated with nothing consuming it: clips/s over --batches batches, and the peak
   RSS of this process (which has listed every file and built the pipeline; ru_maxrss).
3. the quick model's training step (`train_on_batch` on batches from 2, median): clips/s it consumes.

Targets (issue 20): peak RSS under 2 GiB; input clips/s at least 5x the step's.

Run:
    python benchmarks/keywords_at_scale.py                       # 100,000 clips; the first prepare takes minutes
    python benchmarks/keywords_at_scale.py --clips 5000 --batches 50
"""
import argparse
import json
import resource
import time
from pathlib import Path

import _common


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", default=str(_common.default_data_dir("speech_commands_core")),
                   help="Speech Commands folder whose clips are linked (default: %(default)s)")
    p.add_argument("--clips", type=int, default=100_000, help="clips in the linked dataset (default 100000)")
    p.add_argument("--work-dir", default="/tmp/lstm-apps-keywords-at-scale",
                   help="where the linked dataset and the cache go (default: %(default)s)")
    p.add_argument("--shuffle-buffer", type=int, default=4096, help="train.shuffle_buffer (default 4096)")
    p.add_argument("--batches", type=int, default=300, help="timed pipeline batches (default 300)")
    p.add_argument("--train-steps", type=int, default=30, help="timed train_on_batch steps (default 30)")
    return p.parse_args(argv)


def linked_dataset(source, clips, folder):
    """`clips` links to the source's word clips under distinct names (made once), and its noise folder."""
    marker = folder / f".{clips}-clips"
    if marker.exists():
        return folder
    originals = sorted(p for p in source.glob("*/*") if p.parent.name != "_background_noise_"
                       and p.suffix.lower() in (".wav", ".flac"))
    for n in range(clips):
        original = originals[n % len(originals)]
        speaker, rest = original.stem.split("_nohash_")
        link = folder / original.parent.name / f"{speaker}r{n // len(originals)}_nohash_{rest}{original.suffix}"
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(original)
    noise = folder / "_background_noise_"
    if not noise.exists() and (source / "_background_noise_").is_dir():
        noise.symlink_to(source / "_background_noise_")
    marker.touch()
    return folder


def main(argv=None):
    args = parse_args(argv)
    source = _common.require_dir(args.source, "--source")
    work = Path(args.work_dir)
    data_dir = linked_dataset(source, args.clips, work / f"clips-{args.clips}")
    cache = work / f"cache-{args.clips}"
    settings = [f"train.shuffle_buffer={args.shuffle_buffer}"]

    # ------------------------------------------------------------------ 1. prepare (a child process)
    prepare_s, cache_bytes = _common.prepare_in_child("keywords", data_dir, cache, settings)

    machine, task, cfg, data, manifests = _common.read_prepared("keywords", data_dir, cache, settings)
    import numpy as np

    from lstm_apps import runner, training
    from pipelines.keywords.pipeline import split_size, training_dataset

    batch_size = cfg["train"]["batch_size"]
    total = sum(m.examples for m in manifests.values())
    print(f"prepared {total} clips (train {split_size(data, 'train')}) in {prepare_s:.0f} s, "
          f"{cache_bytes / 2**30:.2f} GiB of shards", flush=True)

    # ------------------------------------------------------------------ 2. the training input pipeline
    training.set_seed(cfg["train"]["seed"], False)
    batches = iter(training_dataset(data, cfg).repeat())
    for _ in range(5):  # the shuffle buffer fills here
        next(batches)
    started = time.perf_counter()
    for _ in range(args.batches):
        next(batches)
    input_rate = args.batches * batch_size / (time.perf_counter() - started)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"input pipeline: {input_rate:.0f} clips/s over {args.batches} batches, peak RSS "
          f"{peak_rss / 2**30:.2f} GiB", flush=True)

    # ------------------------------------------------------------------ 3. the quick model's training step
    bins = cfg["features"]["num_mfcc"] or cfg["features"]["num_mel_bins"]  # statistics of 0/1: the step's cost
    assets = {"labels": list(data.labels), "normalizer": {"mean": [0.0] * bins, "variance": [1.0] * bins, "count": 1}}
    model = runner.compiled_model(task, cfg, data, assets)
    held = [next(batches) for _ in range(8)]
    for batch in held[:3]:
        model.train_on_batch(*batch)
    times = []
    for i in range(args.train_steps):
        started = time.perf_counter()
        model.train_on_batch(*held[i % len(held)])
        times.append(time.perf_counter() - started)
    step_rate = batch_size / float(np.median(times))
    print(f"training step: {step_rate:.0f} clips/s (median of {args.train_steps})", flush=True)

    rows = [{"stage": f"prepare ({total} clips)", "value": total / prepare_s, "unit": "clips/s"},
            {"stage": "input pipeline with augmentation", "value": input_rate, "unit": "clips/s"},
            {"stage": "quick model training step", "value": step_rate, "unit": "clips/s"},
            {"stage": "input / step", "value": input_rate / step_rate, "unit": "x (target >= 5)"},
            {"stage": "peak RSS of the training input process", "value": peak_rss / 2**30, "unit": "GiB (target < 2)"}]
    _common.report("keywords_at_scale", f"keywords from prepared shards, {args.clips} clips", rows,
                   [("stage", "stage", None), ("value", "value", ".2f"), ("unit", "unit", None)], machine,
                   vars(args) | {"prepare_seconds": prepare_s, "cache_gib": cache_bytes / 2**30},
                   [f"shuffle buffer {args.shuffle_buffer} clips, batch {batch_size}", _common.NOISE_NOTE])


if __name__ == "__main__":
    main()
