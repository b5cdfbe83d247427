"""Latency of the exported keywords SavedModel: one clip per call (batch 1) on one CPU thread, with and without
the LSTM kernel selector.

What it measures: wall-clock milliseconds per call of each serving signature of a keywords export
(`lstm-apps keywords export`), loaded with `tf.saved_model.load`, with TF's intra-op and inter-op thread pools
both set to --threads (default 1) before TF runs anything:

* serving_default: waveform float32 [1, samples] (a real FSDD clip read with `lstm_apps.inputs.audio.read_audio`,
  as `lstm-apps keywords predict --model` sends it; the model pads/crops it to its 1-second input; --pad sends
  the 1-second padded waveform instead);
* serving_wav: wav string [1] (the clip's WAV bytes; decoding, resampling and padding run in the graph).

Before/after the kernel selector (lstm_apps/layers/portable_lstm.py), in the same run: every export now carries
each LSTM's generic kernel and its cuDNN twin (`api_implements`; a CPU server runs the generic one). The
"single kernel" export is the same run dir exported with the selector off (`lstm_apps.runner.export(...,
portable_lstm=False)`: only the kernel Keras picks on this machine, what exports held before), and both are timed
in alternating blocks of --block calls, so that both see the same load. Each model and signature gets --warmup
untimed calls, then --calls timed ones; it prints p50, p90, p99, mean and min in ms, the CPU time / wall time ratio
(about 1.0 means one thread really did all the work) and, per signature, p50 with the selector / p50 without.

Model: --model EXPORT_DIR (an export dir, whose highest version is used, or one version folder), compared with
--baseline EXPORT_DIR if given. Without --model, the script trains a tiny model itself with the CLI in a
subprocess, in a temporary folder (about 1-2 minutes on 2 cores; that part uses all cores), and exports it twice:
    lstm-apps keywords train --data-dir FSDD --run-dir TMP/run --set train.epochs=1
    lstm-apps keywords export --run-dir TMP/run --export-dir TMP/export                  # with the selector
    python -c "...runner.export(TASK, 'TMP/run', 'TMP/export-single', portable_lstm=False)"  # without (--no-baseline: skip)

Run:
    python benchmarks/export_latency.py                                   # trains a tiny model first
    python benchmarks/export_latency.py --model exports/keywords          # an existing export alone
    python benchmarks/export_latency.py --model EXPORT --baseline OTHER_EXPORT --calls 1000 --threads 2

Data: --data-dir (FSDD; default $LSTM_APPS_SHARED_DATA/fsdd, else <repo>/../shared/data/fsdd) for the tiny
training run and the default clip (--clip, default recordings/3_lucas_0.wav, 0.62 s).
Prints a table and a JSON line at the end.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common

DEFAULT_CLIP = Path("recordings") / "3_lucas_0.wav"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="an export dir or one SavedModel version folder (default: train a tiny one)")
    p.add_argument("--baseline", help="another export to time beside --model, in alternating blocks")
    p.add_argument("--no-baseline", action="store_true",
                   help="without --model: do not export (and time) the tiny model without the kernel selector")
    p.add_argument("--block", type=int, default=10,
                   help="timed calls per block when two exports alternate (default 10)")
    p.add_argument("--data-dir", default=str(_common.default_data_dir("fsdd")),
                   help="FSDD folder, for the tiny training run and the default clip (default: %(default)s)")
    p.add_argument("--clip", help=f"the audio clip sent (default: DATA_DIR/{DEFAULT_CLIP.as_posix()})")
    p.add_argument("--pad", action="store_true",
                   help="send serving_default the clip padded/cropped to the model's 1 s instead of as read")
    p.add_argument("--calls", type=int, default=200, help="timed calls per signature (default 200)")
    p.add_argument("--warmup", type=int, default=20, help="untimed calls per signature first (default 20)")
    p.add_argument("--threads", type=int, default=1, help="TF intra- and inter-op threads (default 1)")
    p.add_argument("--train-epochs", type=int, default=1, help="epochs of the tiny training run (default 1)")
    p.add_argument("--work-dir", help="where the tiny run and export go (default: a temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the temporary run and export")
    return p.parse_args(argv)


def cli(*arguments):
    """`lstm-apps ARGS` with this interpreter and this repo's package (python -m lstm_apps.cli is the same main)."""
    return [sys.executable, "-m", "lstm_apps.cli", *arguments]


SINGLE_KERNEL_EXPORT = ("import sys\n"
                        "from lstm_apps import runner\n"
                        "from lstm_apps.tasks import get_task\n"
                        "print('exported', runner.export(get_task('keywords'), sys.argv[1], sys.argv[2], "
                        "portable_lstm=False))")


def train_tiny_model(data_dir, work_dir, epochs, baseline=True):
    """Train a 1-epoch quick-preset model through the CLI and export it (and, with `baseline`, export it again
    without the kernel selector); returns {label: export dir}."""
    run_dir, export_dir, log = work_dir / "run", work_dir / "export", work_dir / "cli.log"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(_common.REPO),
                                                                     os.environ.get("PYTHONPATH")])))
    env.pop("OMP_NUM_THREADS", None)
    commands = [cli("keywords", "train", "--data-dir", str(data_dir), "--run-dir", str(run_dir),
                    "--set", f"train.epochs={epochs}"),
                cli("keywords", "export", "--run-dir", str(run_dir), "--export-dir", str(export_dir))]
    exports = {"selector": export_dir}
    if baseline:
        exports["single kernel"] = work_dir / "export-single"
        commands.append([sys.executable, "-c", SINGLE_KERNEL_EXPORT, str(run_dir), str(exports["single kernel"])])
    for command in commands:
        shown = ("lstm-apps " + " ".join(command[3:]) if command[1] == "-m" else
                 f"python -c <runner.export(..., portable_lstm=False)> {' '.join(command[3:])}")
        print(f"running: {shown}", flush=True)
        start = time.perf_counter()
        with open(log, "a") as f:
            proc = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT, env=env)
        if proc.returncode:
            tail = "\n".join(log.read_text(errors="replace").strip().splitlines()[-20:])
            raise SystemExit(f"error: `{shown}` failed (exit {proc.returncode}); last lines of {log}:\n{tail}")
        print(f"  done in {time.perf_counter() - start:.1f} s", flush=True)
    return exports


def time_calls(function, inputs, warmup, calls):
    for _ in range(warmup):
        function(**inputs)["probability"].numpy()
    wall, outputs, cpu_start, wall_start = [], None, time.process_time(), time.perf_counter()
    for _ in range(calls):
        start = time.perf_counter_ns()
        outputs = function(**inputs)
        outputs["probability"].numpy()  # the result is on the host: the call has finished
        wall.append((time.perf_counter_ns() - start) / 1e6)
    return wall, time.process_time() - cpu_start, time.perf_counter() - wall_start, outputs


def time_alternating(functions, inputs, warmup, calls, block):
    """{label: (wall ms list, cpu/wall, outputs)}: every function warmed up, then timed in alternating blocks."""
    for function in functions.values():
        time_calls(function, inputs, warmup, 0)
    walls = {label: [] for label in functions}
    cpu = {label: 0.0 for label in functions}
    elapsed = {label: 0.0 for label in functions}
    outputs = {}
    done = 0
    while done < calls:
        size = min(block, calls - done)
        for label, function in functions.items():
            wall, cpu_seconds, wall_seconds, outputs[label] = time_calls(function, inputs, 0, size)
            walls[label] += wall
            cpu[label] += cpu_seconds
            elapsed[label] += wall_seconds
        done += size
    return {label: (walls[label], cpu[label] / elapsed[label], outputs[label]) for label in functions}


def main(argv=None):
    args = parse_args(argv)
    if args.calls < 1 or args.warmup < 0 or args.threads < 1 or args.block < 1:
        raise SystemExit("error: --calls, --threads and --block must be >= 1, --warmup >= 0")
    if args.baseline and not args.model:
        raise SystemExit("error: --baseline needs --model (without --model the script makes its own baseline)")
    data_dir = Path(args.data_dir)
    clip = Path(args.clip) if args.clip else data_dir / DEFAULT_CLIP
    if not clip.is_file():
        raise SystemExit(f"error: --clip {clip}: no such file (pass --clip or --data-dir)")

    temp = None
    trained = args.model is None
    if trained:
        _common.require_dir(data_dir, "--data-dir")
        if args.work_dir:
            work_dir = Path(args.work_dir)
            work_dir.mkdir(parents=True, exist_ok=True)
        else:
            work_dir = temp = Path(tempfile.mkdtemp(prefix="lstm_apps_export_latency_"))
        print(f"no --model: training a tiny keywords model ({args.train_epochs} epoch) in {work_dir}")
        model_dirs = train_tiny_model(data_dir.resolve(), work_dir, args.train_epochs, baseline=not args.no_baseline)
    else:
        model_dirs = {"model": Path(args.model)}
        if args.baseline:
            model_dirs["baseline"] = Path(args.baseline)

    try:
        return measure(args, model_dirs, clip, trained)
    finally:
        if temp is not None and not args.keep:
            shutil.rmtree(temp, ignore_errors=True)
        elif trained:
            print(f"kept the tiny run and exports in {work_dir}", file=sys.stderr)  # stdout ends with the JSON


def measure(args, model_dirs, clip, trained):
    # Threads first: nothing in this process has run TF yet (the tiny training ran in subprocesses).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from lstm_apps.errors import LSTMAppsError
    from lstm_apps.export import lstm_kernel_pairs, read_serving_info
    from lstm_apps.inputs.audio import fit_length, read_audio
    from lstm_apps.runner import resolve_saved_model

    try:
        saved_model_dirs = {label: resolve_saved_model(path) for label, path in model_dirs.items()}
    except LSTMAppsError as error:
        raise SystemExit(f"error: {error}")
    machine = _common.machine_info(
        threads=[tf.config.threading.get_intra_op_parallelism_threads(),
                 tf.config.threading.get_inter_op_parallelism_threads()],
        versions=f"tensorflow {tf.__version__}")
    _common.print_machine(machine)
    info = read_serving_info(next(iter(saved_model_dirs.values())))
    rate = info["sample_rate"]
    signatures, kernel_pairs = {}, {}
    for label, saved_model_dir in saved_model_dirs.items():
        if read_serving_info(saved_model_dir)["sample_rate"] != rate:
            raise SystemExit(f"error: {saved_model_dir} works at another sample rate than the first model")
        kernel_pairs[label] = len(lstm_kernel_pairs(saved_model_dir))
        with _common.Timer() as t:
            signatures[label] = tf.saved_model.load(str(saved_model_dir)).signatures
        print(f"model {label!r}: {saved_model_dir} (labels {info['labels']}, {rate} Hz, {kernel_pairs[label]} LSTM "
              f"kernel pairs), loaded in {t.seconds:.2f} s")

    waveform = read_audio(clip, rate)  # what `lstm-apps keywords predict --model` sends
    if args.pad:
        waveform = fit_length(waveform, int(rate)).numpy()
    wav_bytes = tf.io.read_file(str(clip)).numpy()
    print(f"clip: {clip} ({len(waveform)} samples sent = {len(waveform) / rate:.3f} s; "
          f"{len(wav_bytes)} WAV bytes); TF threads intra/inter = {machine['threads']}")

    requests = {
        "serving_default": {"waveform": tf.constant(waveform[None], tf.float32)},
        "serving_wav": {"wav": tf.constant([wav_bytes])},
    }
    rows, ratios = [], {}
    for name, inputs in requests.items():
        for label, loaded in signatures.items():
            if name not in loaded:
                raise SystemExit(f"error: {saved_model_dirs[label]} has no signature {name} "
                                 f"(has: {', '.join(loaded)})")
        timed = time_alternating({label: loaded[name] for label, loaded in signatures.items()}, inputs,
                                 args.warmup, args.calls, args.block)
        for label, (wall, cpu_ratio, outputs) in timed.items():
            stats = _common.percentiles(wall, (50, 90, 99))
            row = {"signature": name, "model": label, "kernel_pairs": kernel_pairs[label],
                   "input": "float32 [1, %d]" % len(waveform) if name == "serving_default"
                   else "string [1] (%d bytes)" % len(wav_bytes), "calls": args.calls, **stats,
                   "mean": sum(wall) / len(wall), "min": min(wall), "cpu_over_wall": cpu_ratio,
                   "label": outputs["label"].numpy()[0].decode(),
                   "probability": float(outputs["probability"].numpy()[0])}
            rows.append(row)
            print(f"  {name} [{label}]: p50 {row['p50']:.2f} ms, p90 {row['p90']:.2f} ms, p99 {row['p99']:.2f} ms "
                  f"(predicted '{row['label']}' p={row['probability']:.3f})", flush=True)
        if len(timed) == 2:
            first, second = timed
            by_label = {row["model"]: row for row in rows if row["signature"] == name}
            ratios[name] = by_label[first]["p50"] / by_label[second]["p50"]
            for row in by_label.values():
                row["p50_ratio"] = ratios[name]

    notes = [f"batch 1, {args.warmup} warm-up + {args.calls} timed calls per signature and model"
             + (f", the models alternating every {args.block} calls" if len(signatures) > 1 else "")
             + f"; TF intra/inter-op threads {machine['threads']}",
             "cpu/wall = process CPU time / wall time over the timed calls (about 1.0 = one busy thread)",
             f"clip {clip.name}; the model works on {int(rate)} samples (1 s at {rate} Hz) whatever length is sent"]
    if len(signatures) == 2:
        first, second = signatures
        notes.append(f"p50 ratio = p50 of {first!r} / p50 of {second!r}: "
                     + ", ".join(f"{name} {ratio:.3f}" for name, ratio in ratios.items())
                     + ("; 'selector' holds each LSTM's generic and cuDNN kernels (a CPU runs the generic one), "
                        "'single kernel' only the one Keras picked on this machine" if trained else ""))
    if trained:
        notes.append(f"model: a tiny {args.train_epochs}-epoch quick-preset run trained by this script "
                     f"(latency does not depend on how well it is trained)")
    notes.append(_common.NOISE_NOTE)
    machine["load_avg_after"] = _common.load_average()
    columns = [("signature", "signature", None), ("model", "model", None), ("kernel_pairs", "LSTM pairs", None),
               ("input", "input", None), ("p50", "p50 ms", ".2f"), ("p90", "p90 ms", ".2f"),
               ("p99", "p99 ms", ".2f"), ("mean", "mean ms", ".2f"), ("min", "min ms", ".2f"),
               ("cpu_over_wall", "cpu/wall", ".2f")]
    if ratios:
        columns.append(("p50_ratio", "p50 ratio", ".3f"))
    columns.append(("label", "label", None))
    settings = vars(args) | {"saved_models": {label: str(path) for label, path in saved_model_dirs.items()},
                             "clip": str(clip)}
    _common.report("export_latency", "keywords SavedModel latency per clip, batch 1 (ms, lower is better)", rows,
                   columns, machine, settings, notes)


if __name__ == "__main__":
    main()
