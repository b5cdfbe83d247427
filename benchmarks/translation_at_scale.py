"""Translation at WMT-like size: prepare a corpus of N pairs once, then stream it with bounded memory.

The corpus is Multi30k's real training pairs (../shared/data/multi30k/raw) repeated until there are --pairs of
them (written once as plain train.en / train.de), with its real validation split. Then:

1. prepare: `lstm-apps translation prepare --data-cache` in a child process (train the two SentencePiece models,
   tokenize every pair, write shards): wall time, pairs/s, cache size.
2. the training input pipeline from the cache (`pipelines.translation.pipeline.split_batches`: shards shuffled and
   interleaved, a shuffle buffer of --shuffle-buffer pairs, bucketed by length, about train.batch_tokens tokens a
   batch) iterated with nothing consuming it: pairs/s over --batches batches, and the peak RSS of this process
   (which has read the corpus like `train` does and built the pipeline; ru_maxrss).
3. the quick model's training step (`train_on_batch` on batches from 2, after one step per bucket shape): pairs/s
   it consumes.

Targets (issue 20): peak RSS under 2 GiB; input pairs/s at least 5x the step's.

Run:
    python benchmarks/translation_at_scale.py                    # 1,000,000 pairs
    python benchmarks/translation_at_scale.py --pairs 100000 --batches 100
"""
import argparse
import gzip
import resource
import shutil
import time
from pathlib import Path

import _common


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", default=str(_common.default_data_dir("multi30k") / "raw"),
                   help="Multi30k raw folder whose pairs are repeated (default: %(default)s)")
    p.add_argument("--pairs", type=int, default=1_000_000, help="pairs in the repeated corpus (default 1000000)")
    p.add_argument("--work-dir", default="/tmp/lstm-apps-translation-at-scale",
                   help="where the corpus and the cache go (default: %(default)s)")
    p.add_argument("--shuffle-buffer", type=int, default=16384, help="train.shuffle_buffer (default 16384)")
    p.add_argument("--batches", type=int, default=300, help="timed pipeline batches (default 300)")
    p.add_argument("--train-steps", type=int, default=30, help="timed train_on_batch steps (default 30)")
    return p.parse_args(argv)


def repeated_corpus(source, pairs, folder):
    """train.en/train.de of `pairs` lines (Multi30k's training pairs over and over) and its val files, made once."""
    marker = folder / f".{pairs}-pairs"
    if marker.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for lang in ("en", "de"):
        lines = gzip.decompress((source / f"train.{lang}.gz").read_bytes()).decode("utf-8").splitlines()
        with open(folder / f"train.{lang}", "w", encoding="utf-8") as out:
            for n in range(pairs):
                out.write(lines[n % len(lines)] + "\n")
        shutil.copy2(source / f"val.{lang}.gz", folder)
    marker.touch()
    return folder


def main(argv=None):
    args = parse_args(argv)
    source = _common.require_dir(args.source, "--source")
    work = Path(args.work_dir)
    data_dir = repeated_corpus(source, args.pairs, work / f"corpus-{args.pairs}")
    cache = work / f"cache-{args.pairs}"
    settings = [f"train.shuffle_buffer={args.shuffle_buffer}"]

    # ------------------------------------------------------------------ 1. prepare (a child process)
    prepare_s, cache_bytes = _common.prepare_in_child("translation", data_dir, cache, settings)

    machine, task, cfg, data, manifests = _common.read_prepared("translation", data_dir, cache, settings)
    import numpy as np

    from lstm_apps import runner, training
    from pipelines.translation.pipeline import split_batches
    from pipelines.translation.task import read_tokenizers

    print(f"prepared {manifests['train'].examples} training pairs in {prepare_s:.0f} s, "
          f"{cache_bytes / 2**30:.2f} GiB of shards", flush=True)

    # ------------------------------------------------------------------ 2. the training input pipeline
    training.set_seed(cfg["train"]["seed"], False)
    tokenizers = read_tokenizers(data.subwords)
    batches = iter(split_batches(cfg, data, "train", tokenizers, shuffle=True).repeat())
    for _ in range(5):  # the shuffle buffer fills here
        next(batches)
    started, pairs = time.perf_counter(), 0
    for _ in range(args.batches):
        pairs += int(next(batches)[1].shape[0])
    input_rate = pairs / (time.perf_counter() - started)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"input pipeline: {input_rate:.0f} pairs/s over {args.batches} batches, peak RSS "
          f"{peak_rss / 2**30:.2f} GiB", flush=True)

    # ------------------------------------------------------------------ 3. the quick model's training step
    model = runner.compiled_model(task, cfg, data, tokenizers)
    held = [next(batches) for _ in range(200)]
    shapes = {}
    for batch in held:
        shapes.setdefault(tuple(batch[1].shape[1:]), batch)
    for batch in shapes.values():  # one trace per bucket length, outside the timing
        model.train_on_batch(*batch)
    times, consumed = [], 0
    for batch in held[:args.train_steps]:
        started = time.perf_counter()
        model.train_on_batch(*batch)
        times.append(time.perf_counter() - started)
        consumed += int(batch[1].shape[0])
    step_rate = consumed / sum(times)
    print(f"training step: {step_rate:.0f} pairs/s ({args.train_steps} steps, median "
          f"{1000 * float(np.median(times)):.0f} ms)", flush=True)

    rows = [{"stage": f"prepare ({manifests['train'].examples} training pairs)",
             "value": manifests["train"].examples / prepare_s, "unit": "pairs/s"},
            {"stage": "input pipeline (shuffled shards, bucketed)", "value": input_rate, "unit": "pairs/s"},
            {"stage": "quick model training step", "value": step_rate, "unit": "pairs/s"},
            {"stage": "input / step", "value": input_rate / step_rate, "unit": "x (target >= 5)"},
            {"stage": "peak RSS of the training input process", "value": peak_rss / 2**30, "unit": "GiB (target < 2)"}]
    _common.report("translation_at_scale", f"translation from prepared shards, {args.pairs} pairs", rows,
                   [("stage", "stage", None), ("value", "value", ".2f"), ("unit", "unit", None)], machine,
                   vars(args) | {"prepare_seconds": prepare_s, "cache_gib": cache_bytes / 2**30},
                   [f"shuffle buffer {args.shuffle_buffer} pairs, {cfg['train']['batch_tokens']} tokens a batch",
                    _common.NOISE_NOTE])


if __name__ == "__main__":
    main()
