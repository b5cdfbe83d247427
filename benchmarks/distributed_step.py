"""Training step time under each train.distribution: none, mirrored (2 logical CPUs), multi_worker (1 and 2 workers).

Each configuration trains the task's quick preset through the CLI in fresh processes, exactly as a user runs it:
`python -m lstm_apps.cli TASK train --data-dir D --run-dir R --set train.distribution=... train.verbose=2 ...`
(multi_worker: one process per worker, each with its TF_CONFIG from `lstm_apps.distribute.local_tf_configs`,
all on 127.0.0.1, the same --run-dir). The global batch is the same in every configuration (batch sizes are
global), so the step times compare directly.

s/step = median over epochs >= 1 of `epoch_seconds` (history.csv) / the epoch's training steps (read from the
chief's progress line `N/N - ...`). Epoch 0 is left out: it traces the step functions (and fills the keywords
cache); it is shown on its own. `epoch_seconds` spans the epoch from its first batch to the end of its
validation, so it includes the input pipeline and the validation pass; to keep validation small, the script
trains on a copy of the data folder (links) with a short validation split:
- language-model: the first --valid-lines lines of the valid file (100 lines of PTB: 1 validation window of
  32 x 35 tokens, forward only), training on the first --train-tokens tokens;
- keywords (FSDD): recordings 0-4 (test), 5 (valid: 60 clips, 2 batches) and --train-recordings recordings from
  10 on (60 clips each) of every digit and speaker.
Backups, history rows and the learning-curve plot are written after `epoch_seconds` is taken, so they are not in
it. Process start, data reading and model building are not in s/step either (the `wall s` column has them).

On a CPU-only machine, mirrored and 2 workers share the same cores as the one-device run: they measure the
overhead of the distributed loop and its all-reduces, not a speed-up (that needs more devices or machines).

Run:
    python benchmarks/distributed_step.py                                 # language model, ~3 min on 2 cores
    python benchmarks/distributed_step.py --train-tokens 20000 --epochs 2 # a quick check that it runs
    python benchmarks/distributed_step.py --only none,multi_worker-2
    python benchmarks/distributed_step.py --task keywords --epochs 3      # FSDD quick preset

Prints a table (configuration, replicas, s/step, relative to none) and a JSON line at the end.
"""
import argparse
import csv
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common

# name -> (replicas, worker processes, --set values); multi_worker-1 is the distributed loop on one replica
CONFIGS = {
    "none": (1, 1, ["train.distribution=none"]),
    "mirrored": (2, 1, ["train.distribution=mirrored", "train.devices=2"]),
    "multi_worker-1": (1, 1, ["train.distribution=multi_worker"]),
    "multi_worker-2": (2, 2, ["train.distribution=multi_worker"]),
}
DATA = {"language-model": "ptb", "keywords": "fsdd"}
PROGRESS = re.compile(r"^\s*(\d+)/(\d+|Unknown) - ", re.MULTILINE)  # Keras' verbose=2 line at the end of an epoch
TIMEOUT = 3600


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=list(DATA), default="language-model", help="task (default: %(default)s)")
    p.add_argument("--data-dir", help="data folder (default: the shared data's ptb, or fsdd for keywords)")
    p.add_argument("--train-tokens", type=int, default=50000,
                   help="language-model: data.train_tokens (default %(default)s: about 46 steps of 32 x 35)")
    p.add_argument("--valid-lines", type=int, default=100,
                   help="language-model: lines of the valid file kept (default %(default)s; 0 = the whole file)")
    p.add_argument("--train-recordings", type=int, default=12,
                   help="keywords (FSDD): recordings per digit and speaker trained on (default %(default)s: "
                        "720 clips, 23 steps of 32)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per run; epochs >= 1 are timed (default 3)")
    p.add_argument("--only", default=",".join(CONFIGS),
                   help="comma-separated configurations (default: all of %(default)s)")
    p.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="more config overrides for every run, as for `train --set`")
    p.add_argument("--threads", type=int, default=0,
                   help="TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS of every process (default 0 = TF's "
                        "choice: all cores in each process)")
    p.add_argument("--work-dir", help="where the data copy and run dirs go (default: a temporary folder, removed)")
    args = p.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in args.only if name not in CONFIGS]
    if unknown or not args.only:
        p.error(f"--only {','.join(unknown)}: expected names among {', '.join(CONFIGS)}")
    if args.epochs < 2:
        p.error("--epochs must be >= 2 (epoch 0 is tracing; epochs >= 1 are timed)")
    return args


# --------------------------------------------------------------------------------------------- data copies
def language_model_data(source, target, valid_lines):
    """`source`'s train and test files linked into `target`, its valid file cut to `valid_lines` lines."""
    from pipelines.language_model.data import LAYOUTS

    pattern = next((p for p in LAYOUTS.values() if (source / p.format(split="train")).is_file()), None)
    if pattern is None:
        names = ", ".join(p.format(split="train") for p in LAYOUTS.values())
        sys.exit(f"error: --data-dir {source}: no training file ({names})")
    target.mkdir(parents=True)
    for split in ("train", "valid", "test"):
        name = pattern.format(split=split)
        if split == "valid" and valid_lines:
            with open(source / name, encoding="utf-8") as f:
                lines = [line for _, line in zip(range(valid_lines), f)]
            (target / name).write_text("".join(lines), encoding="utf-8")
        else:
            (target / name).symlink_to((source / name).resolve())
    return target


def keywords_data(source, target, train_recordings):
    """FSDD recordings 0-5 (test 0-4, valid 5) and `train_recordings` from 10 on, linked into `target`."""
    recordings = source / "recordings"
    if not recordings.is_dir():
        sys.exit(f"error: --data-dir {source}: no recordings/ folder (the keywords benchmark uses FSDD)")
    keep = set(range(6)) | set(range(10, 10 + train_recordings))
    folder = target / "recordings"
    folder.mkdir(parents=True)
    for path in recordings.glob("*.wav"):
        if int(path.stem.rsplit("_", 1)[1]) in keep:
            (folder / path.name).symlink_to(path.resolve())
    return target


# --------------------------------------------------------------------------------------------- one configuration
def environment(threads, tf_config=None):
    paths = [str(_common.REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
    env.pop("TF_CONFIG", None)
    if tf_config:
        env["TF_CONFIG"] = tf_config
    if threads:
        env["TF_NUM_INTRAOP_THREADS"] = env["TF_NUM_INTEROP_THREADS"] = str(threads)
    return env


def run_configuration(name, args, data_dir, run_dir):
    """Train one configuration to the end; the row of the table (or one with an error)."""
    from lstm_apps.distribute import local_tf_configs

    replicas, processes, settings = CONFIGS[name]
    settings = [*settings, f"train.epochs={args.epochs}", "train.verbose=2", *args.set]
    if args.task == "language-model":
        settings.append(f"data.train_tokens={args.train_tokens}")
    command = [sys.executable, "-m", "lstm_apps.cli", args.task, "train", "--data-dir", str(data_dir),
               "--run-dir", str(run_dir), "--set", *settings]
    tf_configs = local_tf_configs(processes) if name.startswith("multi_worker") else [None]
    print(f"-- {name}: {processes} process(es), {replicas} replica(s): {' '.join(command[1:])}", flush=True)
    started = time.perf_counter()
    workers = [subprocess.Popen(command, cwd=_common.REPO, env=environment(args.threads, tf_config),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for tf_config in tf_configs]
    results, deadline = [], time.monotonic() + TIMEOUT
    try:
        for worker in workers:
            out, err = worker.communicate(timeout=max(1, deadline - time.monotonic()))
            results.append((worker.returncode, out, err))
    except subprocess.TimeoutExpired:
        results.append((None, "", f"timed out after {TIMEOUT} s"))
    finally:
        for worker in workers:  # only the processes this script started
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
    wall = time.perf_counter() - started
    row = {"configuration": name, "replicas": replicas, "processes": processes, "wall_s": wall}
    failed = [(index, code, err) for index, (code, _, err) in enumerate(results) if code != 0]
    if failed:
        index, code, err = failed[0]
        row["error"] = f"worker {index} exit {code}: " + (err.strip().splitlines() or ["(no stderr)"])[-1]
        print(f"   failed: {row['error']}\n{err[-2000:]}", flush=True)
        return row
    chief_out = results[0][1]
    steps = [int(done) for done, total in PROGRESS.findall(chief_out) if total in (done, "Unknown")]
    with open(run_dir / "history.csv", newline="") as f:
        history = list(csv.DictReader(f))
    if len(steps) != len(history) or not steps:
        row["error"] = f"read {len(steps)} progress lines for {len(history)} epochs"
        print(f"   failed: {row['error']}\n{chief_out[-2000:]}", flush=True)
        return row
    per_step = [float(epoch["epoch_seconds"]) / count for epoch, count in zip(history, steps)]
    row.update(steps_per_epoch=steps[-1], s_per_step=statistics.median(per_step[1:]), epoch0_s_per_step=per_step[0],
               epoch_s_per_step=[round(value, 4) for value in per_step], loss=float(history[-1]["loss"]),
               val_loss=float(history[-1]["val_loss"]))
    print(f"   {steps[-1]} steps/epoch, s/step by epoch {row['epoch_s_per_step']}, {wall:.0f} s in all", flush=True)
    return row


def main(argv=None):
    args = parse_args(argv)
    source = _common.require_dir(args.data_dir or _common.default_data_dir(DATA[args.task]), "--data-dir")
    machine = _common.machine_info(threads=args.threads or "tf default (all cores, per process)")
    _common.print_machine(machine)
    with tempfile.TemporaryDirectory(prefix="distributed_step-") as scratch:
        work = Path(args.work_dir) if args.work_dir else Path(scratch)
        if (work / "data").exists() or (work / "runs").exists():
            sys.exit(f"error: --work-dir {work}: holds data/ or runs/ already (a finished run is never retrained); "
                     "name a new folder")
        if args.task == "language-model":
            data_dir = language_model_data(source, work / "data", args.valid_lines)
        else:
            data_dir = keywords_data(source, work / "data", args.train_recordings)
        rows = [run_configuration(name, args, data_dir, work / "runs" / name) for name in args.only]
    reference = next((row["s_per_step"] for row in rows if row["configuration"] == "none" and "s_per_step" in row),
                     None)
    for row in rows:
        if reference and "s_per_step" in row:
            row["vs_none"] = row["s_per_step"] / reference
    machine["load_avg_after"] = _common.load_average()
    if args.task == "language-model":
        valid = f"the first {args.valid_lines} lines of the valid file" if args.valid_lines else "the whole valid file"
        what = f"the first {args.train_tokens} PTB training tokens, validation on {valid}"
    else:
        what = (f"FSDD, {args.train_recordings} recordings per digit and speaker for training, "
                "recording 5 (60 clips) for validation")
    notes = [
        f"{args.task} quick preset, {what}; global batches as in the preset (the same in every configuration).",
        "s/step: median over epochs >= 1 of history.csv's epoch_seconds / the epoch's steps; it includes the input "
        "pipeline and the (short) validation pass; epoch 0 (tracing) is shown apart; wall s includes process "
        "start, data reading and model building.",
        "vs none: s/step divided by none's (below 1 = faster). mirrored = 2 logical CPU devices in one process; "
        "multi_worker-N = N processes on 127.0.0.1; all share this machine's cores, so this is the distributed "
        "loop's overhead, not a multi-device speed-up.",
        f"1-min load average {machine['load_avg_1_5_15min'] and machine['load_avg_1_5_15min'][0]} before, "
        f"{machine['load_avg_after'] and machine['load_avg_after'][0]} after. " + _common.NOISE_NOTE,
    ]
    columns = [("configuration", "configuration", None), ("replicas", "replicas", None),
               ("processes", "processes", None), ("steps_per_epoch", "steps/epoch", None),
               ("s_per_step", "s/step", ".4f"), ("vs_none", "vs none", ".2f"),
               ("epoch0_s_per_step", "epoch 0 s/step", ".4f"), ("loss", "last loss", ".4f"),
               ("wall_s", "wall s", ".0f"), ("error", "error", None)]
    if not any("error" in row for row in rows):
        columns.pop()
    settings = {key: value for key, value in vars(args).items()}
    settings["data_dir"] = str(source)
    _common.report("distributed_step", f"{args.task}: training step time by train.distribution", rows, columns,
                   machine, settings, notes)
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
