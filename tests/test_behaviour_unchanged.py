"""Training computes what it computed before the shared-runner refactor: one short, op-deterministic epoch per task
on the quick preset, run through the CLI in a fresh process, must log the figures the old code logged.

Only the CLI contract is used (`python -m pipelines.<task> train --data-dir --run-dir --set ...`, and RUN_DIR/
history.csv with one row per epoch), plus the clip generator's command line for captioning, so the test does not
depend on where the Python internals live.

The figures were recorded on CPU (2-core AMD EPYC; TensorFlow 2.21.0, Keras 3.15.1, NumPy 2.4.6, PyAV 18.1.0,
sentencepiece 0.2.3). Each command, run twice in fresh processes, gave bit-identical history.csv values (every
column but epoch_seconds), so any difference is a change in what training computes; the relative tolerance only
leaves room for float32 rounding (history.csv holds float32 values), about a hundred ulps. Other hardware or library
versions may legitimately give other figures: re-record them from the commit below before changing the code.
"""
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import shared

REPO = Path(__file__).resolve().parents[1]
RELATIVE_TOLERANCE = 1e-5
UNLOGGED = {"epoch", "epoch_seconds"}  # the epoch number is checked apart; the wall time is not a result
# columns the refactor added on purpose: every run now logs the learning rate each epoch used (RunMonitor)
ADDED_SINCE = {"learning_rate"}
ONE_EPOCH = ["train.epochs=1", "train.deterministic=true"]

# Recorded from commit 2ae8011338934bde8f5602e3c1c72c627d5a6654 (before the shared-runner refactor): history.csv of
# each command below, epoch 0, every column but epoch_seconds.
RECORDED = {
    # re-recorded on purpose (issue 20): the speed change now plays each clip at the nearest fast FFT length
    # (`audio.nearest_fast_length`, within 1% of the drawn speed), twice as fast an input pipeline; the same command
    # twice in fresh processes gave these bit-identical figures (2-core Intel Xeon, same library versions)
    "keywords": {
        "accuracy": 0.6695833206176758,
        "loss": 1.045106053352356,
        "val_accuracy": 0.9399999976158142,
        "val_loss": 0.275388240814209,
    },
    "language_model": {
        "learning_rate": 0.003000000026077032,
        "loss": 6.23151159286499,
        "perplexity": 508.5238342285156,
        "val_loss": 5.581944465637207,
        "val_perplexity": 265.58740234375,
    },
    "translation": {
        "learning_rate": 0.003000000026077032,
        "loss": 6.258976936340332,
        "perplexity": 408.37567138671875,
        "val_loss": 5.876623630523682,
        "val_perplexity": 255.82476806640625,
    },
    "captioning": {
        "loss": 2.959139347076416,
        "perplexity": 19.220949172973633,
        "val_loss": 2.6265146732330322,
        "val_perplexity": 13.820911407470703,
    },
}


def run(args):
    """`python ARGS` with this checkout's code first on the path; the output is kept for a failure's message."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    result = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{' '.join(args)} exited {result.returncode}:\n{result.stdout[-3000:]}\n" \
                                   f"{result.stderr[-3000:]}"
    return result


def generated_clips(tmp_path):
    """80 generated clips (40 train, 20 val, 20 test) written by the generator's command line (~2 s), as MPEG-4
    Part 2 .avi: the default H.264 .mp4 files are not reproducible (libx264's macroblock-tree rate control, in the
    FFmpeg that PyAV 18.1.0 bundles, encodes the same frames differently from one clip or process to the next), so
    their decoded frames, and the losses, change between generations; the .avi files are byte-identical each time."""
    folder = tmp_path / "clips"
    run(["-m", "pipelines.captioning.synthetic", str(folder), "--clips-per-combination", "1", "--format", ".avi"])
    return folder


# task module -> (its data dir, given the test's request and tmp_path; --set overrides beyond ONE_EPOCH)
COMMANDS = {
    # the refactor moves keywords from per-tensor to global-norm clipping: a threshold no gradient reaches makes
    # both no-ops (checked on the old code: clipnorm 1e6 per tensor, 1e6 global and 0 (off) log identical figures)
    "keywords": (lambda request, tmp_path: request.getfixturevalue("fsdd_dir"), ["train.clipnorm=1000000.0"]),
    "language_model": (lambda request, tmp_path: shared("ptb"), ["data.train_tokens=20000"]),
    "translation": (lambda request, tmp_path: shared("multi30k") / "raw", ["data.train_pairs=2000"]),
    "captioning": (lambda request, tmp_path: generated_clips(tmp_path), []),
}


@pytest.mark.slow
@pytest.mark.parametrize("task", list(COMMANDS))
def test_one_epoch_logs_the_figures_of_the_old_code(task, request, tmp_path):
    data_of, overrides = COMMANDS[task]
    data_dir = data_of(request, tmp_path)
    run_dir = tmp_path / "run"
    run(["-m", f"pipelines.{task}", "train", "--data-dir", str(data_dir), "--run-dir", str(run_dir),
         "--set", *ONE_EPOCH, *overrides])
    with open(run_dir / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and float(rows[0]["epoch"]) == 0, rows
    logged = {key: float(value) for key, value in rows[0].items()
              if key not in UNLOGGED and (key in RECORDED[task] or key not in ADDED_SINCE)}
    assert set(logged) == set(RECORDED[task]), f"history.csv columns changed: {sorted(rows[0])}"
    assert logged == pytest.approx(RECORDED[task], rel=RELATIVE_TOLERANCE, abs=0)
