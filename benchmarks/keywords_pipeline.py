"""Keywords (FSDD) input pipeline vs training step: which one limits training speed, in clips/s.

What it measures, with the quick preset (`lstm_apps.config.build_config(TASK.presets_dir, "quick")`) on FSDD:

1. input pipeline: iterating `pipelines.keywords.task.training_dataset(data, cfg)` (decode WAVs in tf.data,
   pad/crop to 1 s, in-memory cache, shuffle, time shift + noise mixing, batch, prefetch) with nothing consuming
   the batches:
     - epoch 1 alone (it fills the cache: file reads and WAV decoding happen here),
     - then --epochs further epochs served from the cache (mean and best).
2. training step: the keywords model from `pipelines.keywords.model.build_model` (normaliser adapted with
   the normaliser statistics of `training_assets`, as `KeywordsTask.prepare_run` computes them), compiled exactly as `KeywordsTask.train` compiles it
   (Adam + cosine decay, clipnorm, sparse CE, accuracy), stepped with `model.train_on_batch` on pre-materialised
   full batches, so no input work is timed (median step time).
3. both together (skip with --fit-steps 0): `model.fit` on `training_dataset` for --fit-steps steps, timed per
   batch by a callback (median; the first 5 batches are left out); on few cores the pipeline's map threads and the
   training step compete for the same CPUs, so this is what a real `train` gets.

The figure reported for the pipeline is the cached-epoch rate (what every epoch after the first gets); the first
epoch is printed too. The slower of pipeline and training step is the bottleneck.

Run:
    python benchmarks/keywords_pipeline.py                               # ~30-60 s on 2 cores
    python benchmarks/keywords_pipeline.py --epochs 5 --train-steps 100 --fit-steps 85
    python benchmarks/keywords_pipeline.py --preset full --set model.name=attention
    python benchmarks/keywords_pipeline.py --data-dir /path/to/fsdd --threads 1

Data: --data-dir, default $LSTM_APPS_SHARED_DATA/fsdd, else <repo>/../shared/data/fsdd.
Prints a table of clips/s (and ms per batch) and a JSON line at the end.
"""
import argparse
import os
import time

import _common


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=str(_common.default_data_dir("fsdd")),
                   help="FSDD folder (default: %(default)s)")
    p.add_argument("--preset", default="quick", help="keywords preset (default: quick)")
    p.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="config overrides, as for `lstm-apps keywords train --set`")
    p.add_argument("--epochs", type=int, default=3,
                   help="cached pipeline epochs timed after the cache-filling first one (default 3)")
    p.add_argument("--train-steps", type=int, default=50, help="timed train_on_batch steps (default 50)")
    p.add_argument("--warmup", type=int, default=3, help="untimed train_on_batch steps first (default 3)")
    p.add_argument("--fit-steps", type=int, default=75,
                   help="steps of model.fit on the real pipeline (0 = skip; default 75 = one FSDD quick epoch)")
    p.add_argument("--threads", type=int, default=0,
                   help="TF intra- and inter-op threads (default 0 = TF's choice, all cores)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.epochs < 1 or args.train_steps < 1 or args.warmup < 1 or args.fit_steps < 0:
        raise SystemExit("error: --epochs, --train-steps and --warmup must be >= 1, --fit-steps >= 0")
    data_dir = _common.require_dir(args.data_dir, "--data-dir")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras
    import numpy as np

    from lstm_apps import runner, training
    from lstm_apps.config import build_config
    from pipelines.keywords.pipeline import split_size, training_dataset
    from pipelines.keywords.task import TASK, training_assets

    machine = _common.machine_info(threads=args.threads or "tf default",
                                   versions=f"tensorflow {tf.__version__} / keras {keras.__version__}")
    _common.print_machine(machine)

    cfg = build_config(TASK.presets_dir, args.preset, overrides=args.set)
    with _common.Timer() as t:
        data = TASK.read_data(cfg, data_dir, runner.TRAINING_SPLITS)  # validates every file, as `train` does
    batch_size = cfg["train"]["batch_size"]
    train_clips = split_size(data, "train")
    print(f"data: {data.layout} at {data_dir}, {train_clips} training clips of {data.num_samples} samples "
          f"({data.sample_rate} Hz), {len(data.labels)} classes, batch {batch_size}; loaded and checked in "
          f"{t.seconds:.1f} s")
    training.set_seed(cfg["train"]["seed"], cfg["train"]["deterministic"])

    # ------------------------------------------------------------------ 1. input pipeline alone
    dataset = training_dataset(data, cfg)

    def one_epoch():
        clips = batches = 0
        start = time.perf_counter()
        for waveforms, _ in dataset:
            clips += int(waveforms.shape[0])
            batches += 1
        return clips, batches, time.perf_counter() - start

    clips, batches, first_s = one_epoch()
    first_rate = clips / first_s
    print(f"pipeline epoch 1 (fills the cache): {clips} clips in {batches} batches, {first_s:.2f} s, "
          f"{first_rate:.0f} clips/s", flush=True)
    cached = []
    for epoch in range(args.epochs):
        clips, batches, seconds = one_epoch()
        cached.append(clips / seconds)
        print(f"pipeline epoch {epoch + 2} (cached): {seconds:.2f} s, {cached[-1]:.0f} clips/s", flush=True)
    pipeline_rate = float(np.mean(cached))

    # ------------------------------------------------------------------ 2. training step alone
    with _common.Timer() as t:
        model = runner.compiled_model(TASK, cfg, data, training_assets(cfg, data))  # as `train` builds it
    print(f"model built and compiled in {t.seconds:.1f} s (the normaliser adapted on the training clips)")
    print(f"model: {model.name}, {model.count_params():,} parameters, jit_compile={model.jit_compile}")

    full = [(w, y) for w, y in dataset if int(w.shape[0]) == batch_size]  # materialised (tensors in memory)
    full = full[: max(8, min(len(full), args.train_steps))]
    start = time.perf_counter()
    model.train_on_batch(*full[0])
    first_step = time.perf_counter() - start
    for i in range(1, args.warmup):
        model.train_on_batch(*full[i % len(full)])
    step_times = []
    for i in range(args.train_steps):
        start = time.perf_counter()
        model.train_on_batch(*full[i % len(full)])  # returns numpy logs: the step has finished
        step_times.append(time.perf_counter() - start)
    step_s = float(np.median(step_times))  # the median shrugs off bursts of other work on the machine
    train_rate = batch_size / step_s
    print(f"train_on_batch: first call {first_step:.2f} s (tracing), then median {1000 * step_s:.1f} ms/step "
          f"(mean {1000 * np.mean(step_times):.1f}) over {args.train_steps} steps = {train_rate:.0f} clips/s",
          flush=True)

    # ------------------------------------------------------------------ 3. both together (model.fit)
    fit_rate = fit_ms = None
    if args.fit_steps:
        class BatchTimes(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.times = []

            def on_train_batch_end(self, batch, logs=None):
                self.times.append(time.perf_counter())

        timer = BatchTimes()
        skip = min(5, max(args.fit_steps - 2, 0))
        model.fit(dataset, epochs=1, steps_per_epoch=args.fit_steps, callbacks=[timer], verbose=0, shuffle=False)
        intervals = np.diff(timer.times[skip:])
        if len(intervals):
            fit_ms = 1000 * float(np.median(intervals))
            fit_rate = batch_size / (fit_ms / 1000)
            print(f"model.fit on the pipeline: median {fit_ms:.1f} ms/step (mean {1000 * np.mean(intervals):.1f}) "
                  f"over {len(intervals)} steps = {fit_rate:.0f} clips/s", flush=True)

    # ------------------------------------------------------------------ report
    bottleneck = "training step" if train_rate < pipeline_rate else "input pipeline"
    ratio = max(train_rate, pipeline_rate) / min(train_rate, pipeline_rate)
    rows = [
        {"stage": "pipeline, epoch 1 (fills cache)", "clips_per_s": first_rate, "ms_per_batch": 1000 * batch_size / first_rate},
        {"stage": f"pipeline, cached (mean of {args.epochs} epochs)", "clips_per_s": pipeline_rate,
         "ms_per_batch": 1000 * batch_size / pipeline_rate, "best_clips_per_s": float(max(cached))},
        {"stage": "training step (train_on_batch)", "clips_per_s": train_rate, "ms_per_batch": 1000 * step_s},
    ]
    if fit_rate:
        rows.append({"stage": "model.fit on the pipeline", "clips_per_s": fit_rate, "ms_per_batch": fit_ms})
    notes = [f"bottleneck: the {bottleneck} ({ratio:.1f}x slower than the "
             f"{'input pipeline' if bottleneck == 'training step' else 'training step'}; cached epochs)"]
    if first_rate < train_rate:
        notes.append(f"the first (cache-filling) epoch's pipeline ({first_rate:.0f} clips/s) is slower than the "
                     f"training step: epoch 1 is input-bound")
    else:
        notes.append(f"even the first (cache-filling) epoch's pipeline ({first_rate:.0f} clips/s) outruns the "
                     f"training step")
    notes += [f"preset {args.preset}{' with ' + ' '.join(args.set) if args.set else ''}: model {cfg['model']['name']} "
              f"{cfg['model']['layers']}x{cfg['model']['units']} bidirectional={cfg['model']['bidirectional']}, "
              f"batch {batch_size}, {data.num_samples} samples/clip; TF threads: {args.threads or 'default'}",
              _common.NOISE_NOTE]
    machine["load_avg_after"] = _common.load_average()
    _common.report("keywords_pipeline", f"keywords input pipeline vs training step ({data.layout}, clips/s)", rows,
                   [("stage", "stage", None), ("clips_per_s", "clips/s", ".0f"), ("ms_per_batch", "ms/batch", ".1f")],
                   machine, vars(args) | {"data_dir": str(data_dir)}, notes)


if __name__ == "__main__":
    main()
