"""Helpers shared by the benchmark scripts: paths, machine facts, timing summaries, the final table + JSON line.

Nothing here imports TensorFlow or torch, so a script can set thread counts before either starts.
"""
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without `pip install -e .`: use this repo's package
    sys.path.insert(0, str(REPO))

NOISE_NOTE = ("CPU timings are noisy: other work (e.g. someone training a model) may share these cores; "
              "compare figures only within one run, or repeat.")


def shared_data_root():
    """$LSTM_APPS_SHARED_DATA, else <repo>/../shared/data (the same rule as tests/conftest.py)."""
    return Path(os.environ.get("LSTM_APPS_SHARED_DATA", REPO.parent / "shared" / "data"))


def default_data_dir(name):
    return shared_data_root() / name


def require_dir(path, what):
    path = Path(path)
    if not path.is_dir():
        sys.exit(f"error: {what} {path}: no such folder (pass --data-dir, or set LSTM_APPS_SHARED_DATA to the "
                 f"shared data folder)")
    return path


def load_average():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_info(**extra):
    """Facts printed with every result: enough to tell two runs' machines (and their load) apart."""
    info = {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_avg_1_5_15min": load_average(),
    }
    info.update(extra)
    return info


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def print_machine(info):
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    load = info.get("load_avg_1_5_15min")
    if load and info.get("cores") and load[0] > 0.5:
        print(f"note: 1-min load average {load[0]} on {info['cores']} cores before this run started. " + NOISE_NOTE)
    else:
        print("note: " + NOISE_NOTE)


def percentiles(values, qs=(50, 90, 99)):
    import numpy as np
    values = np.asarray(values, dtype=float)
    return {f"p{q}": float(np.percentile(values, q)) for q in qs}


class Timer:
    """with Timer() as t: ...; t.seconds"""

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def format_table(rows, columns):
    """rows: list of dicts; columns: list of (key, header, format spec or None)."""
    cells = [[h for _, h, _ in columns]]
    for row in rows:
        line = []
        for key, _, spec in columns:
            value = row.get(key, "")
            if value is None:
                value = "-"
            elif spec and isinstance(value, (int, float)) and not isinstance(value, bool):
                value = format(value, spec)
            line.append(str(value))
        cells.append(line)
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    out = []
    for n, line in enumerate(cells):
        out.append("  ".join(c.rjust(w) if n and _numeric(c) else c.ljust(w) for c, w in zip(line, widths)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _numeric(text):
    try:
        float(text.rstrip("x%"))
        return True
    except ValueError:
        return False


def report(benchmark, title, rows, columns, machine, settings, notes=()):
    """The end of every script: a titled table, notes, then one JSON line (the last line of output)."""
    print()
    print(f"== {title} ==")
    print(format_table(rows, columns))
    for note in notes:
        print(f"* {note}")
    payload = {"benchmark": benchmark, "settings": settings, "machine": machine, "results": rows,
               "notes": list(notes)}
    print(json.dumps(payload, default=str), flush=True)
    return payload


def prepare_in_child(task, data_dir, cache, settings):
    """`lstm-apps TASK prepare --data-dir DATA_DIR --data-cache CACHE --set SETTINGS...` in a child process (its
    memory is not this one's): (wall seconds, bytes of the shards)."""
    import subprocess

    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lstm_apps.cli", task, "prepare", "--data-dir", str(data_dir),
                    "--data-cache", str(cache), "--set", *settings], check=True, cwd=REPO)
    return time.perf_counter() - started, sum(f.stat().st_size for f in Path(cache).rglob("*.tfrecord"))


def read_prepared(task_name, data_dir, cache, settings):
    """In this process, after `prepare_in_child`: (machine info, the task, its quick config with the cache, its
    training data pointed at the complete shards, {split: Manifest}), as `train` reads them."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from lstm_apps import runner
    from lstm_apps.config import build_config
    from lstm_apps.tasks import get_task

    machine = machine_info(versions=f"tensorflow {tf.__version__} / keras {keras.__version__}")
    print_machine(machine)
    task = get_task(task_name)
    cfg = build_config(task.presets_dir, "quick", overrides=[f"data.dir={data_dir}", f"data.cache={cache}", *settings])
    data = task.read_data(cfg, data_dir, runner.TRAINING_SPLITS)
    return machine, task, cfg, data, runner.prepared(task, cfg, data, runner.TRAINING_SPLITS)
