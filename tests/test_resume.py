"""SIGKILL in the middle of an epoch, the same command again: training continues from the backup."""
import csv
import os
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from lstm_apps import training
from lstm_apps.training import BackupAndRestore

EPOCHS = 4
LINE_X = np.linspace(0.5, 1.5, 32, dtype=np.float32)[:, None]  # the inputs of `train_line`


def history_epochs(run_dir):
    path = run_dir / "history.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume(fsdd_dir, tmp_path):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "pipelines.keywords", "train", "--data-dir", str(fsdd_dir), "--run-dir",
               str(run_dir), "--set", f"train.epochs={EPOCHS}"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 600
    while len(history_epochs(run_dir)) < 1 and time.time() < deadline:
        assert first.poll() is None, first.stdout.read()[-2000:]
        time.sleep(0.2)
    time.sleep(1.0)  # an epoch takes several seconds: we are now inside epoch 2
    done_at_kill = history_epochs(run_dir)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert first.returncode == -signal.SIGKILL
    assert 1 <= len(done_at_kill) < EPOCHS, "the kill must land mid-run"
    assert (run_dir / "backup").is_dir() and not (run_dir / "model.keras").exists()

    second = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    assert "resuming keywords run" in second.stdout
    epochs_run = [int(n) for n in re.findall(r"Epoch (\d+)/%d" % EPOCHS, second.stdout)]
    assert epochs_run and epochs_run[0] == len(done_at_kill) + 1, "resumed from the backup, not from epoch 1"
    assert history_epochs(run_dir) == list(range(EPOCHS))
    assert (run_dir / "model.keras").exists() and not (run_dir / "backup").exists()

    evaluated = subprocess.run([sys.executable, "-m", "pipelines.keywords", "evaluate", "--run-dir", str(run_dir)],
                               capture_output=True, text=True, timeout=600)
    assert evaluated.returncode == 0 and (run_dir / "metrics-test.json").exists()

    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 2 and "holds a finished run" in again.stderr, "a finished run is never overwritten"


def test_resumed_history_keeps_its_columns(tmp_path):
    """A session that logs a column the first one did not (or lacks one) still writes under the right headers."""
    from lstm_apps.training import HistoryLogger, ResumedMonitors, plot_learning_curve

    path = tmp_path / "history.csv"
    path.write_text("epoch,loss,val_loss\n0,2.0,2.5\n")
    logger = HistoryLogger(str(path), append=True)
    logger.on_train_begin()
    logger.on_epoch_end(1, {"epoch_seconds": 9.0, "loss": 1.5, "val_loss": 2.25})
    logger.on_epoch_end(2, {"loss": 1.25})
    logger.on_train_end()
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["epoch"], r["loss"], r["val_loss"]) for r in rows] == [("0", "2.0", "2.5"), ("1", "1.5", "2.25"),
                                                                     ("2", "1.25", "NA")]
    assert path.read_text().count("epoch") == 1, "one header"
    checkpoint = keras.callbacks.ModelCheckpoint(str(tmp_path / "best.weights.h5"), save_best_only=True, mode="min",
                                                 save_weights_only=True)
    ResumedMonitors(path, [checkpoint]).on_train_begin()
    assert checkpoint.best == 2.25, "the resumed checkpoint's best skips the missing value"
    plot_learning_curve(tmp_path)
    assert (tmp_path / "learning_curve.png").stat().st_size > 0


class Interrupt(keras.callbacks.Callback):
    """Stop training (as a kill would) at one batch of one epoch."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("backup", [BackupAndRestore, keras.callbacks.BackupAndRestore])
def test_a_second_interruption_after_a_resume_keeps_the_epoch(backup, tmp_path):
    """Interrupted mid-epoch, resumed, interrupted again before the resumed epoch ends: the third session must
    still continue from epoch 2 (Keras's own callback records epoch 0 there and restarts the run)."""
    x, y = np.ones((40, 3), np.float32), np.zeros((40, 1), np.float32)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")

    def session(*callbacks):
        return model.fit(x, y, batch_size=4, epochs=5, verbose=0,
                         callbacks=[backup(str(tmp_path / "backup"), save_freq=2), *callbacks])

    for _ in range(2):  # both sessions stop in epoch 2, after the backup of its 6th batch
        with pytest.raises(KeyboardInterrupt):
            session(Interrupt(epoch=2, batch=6))
    resumed_epochs = session().epoch
    if backup is BackupAndRestore:
        assert resumed_epochs == [2, 3, 4]
    else:
        assert resumed_epochs == [0, 1, 2, 3, 4], "Keras fixed its callback: drop lstm_apps' BackupAndRestore"


def train_line(run_dir, train_cfg, *extra_callbacks):
    """training.fit of a one-weight model: full-batch SGD fits y = x while validation asks for y = -x, so every
    epoch after the first is worse."""
    x = LINE_X
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    train, val = (tf.data.Dataset.from_tensor_slices((x, y)).batch(32) for y in (x, -x))
    training.fit(model, train, val, run_dir, train_cfg, extra_callbacks=extra_callbacks)
    return model


def test_a_resumed_run_stops_and_decays_like_an_uninterrupted_one(tmp_path):
    """Early stopping, the learning-rate decay and the best checkpoint carry across an interruption: the resumed run
    logs the same epochs, learning rates and losses as one never stopped, and ends with the same weights. Keras
    alone restarts its patience (5 epochs, not 3) and loses the decay decided at the last finished epoch."""
    train_cfg = {"epochs": 6, "monitor": "val_loss", "monitor_mode": "min", "patience": 2, "backup_every": "epoch",
                 "verbose": 0, "lr_decay": 0.5, "lr_patience": 0}
    straight = train_line(tmp_path / "straight", train_cfg)
    with pytest.raises(KeyboardInterrupt):
        train_line(tmp_path / "resumed", train_cfg, Interrupt(epoch=2, batch=0))
    assert len(training.read_history(tmp_path / "resumed" / "history.csv")) == 2
    resumed = train_line(tmp_path / "resumed", train_cfg)

    straight_rows, resumed_rows = (training.read_history(tmp_path / name / "history.csv")
                                   for name in ("straight", "resumed"))
    assert [r["epoch"] for r in straight_rows] == [0, 1, 2], "patience 2: stopped after the second worse epoch"
    assert [r["epoch"] for r in resumed_rows] == [0, 1, 2]
    assert [r["learning_rate"] for r in straight_rows] == pytest.approx([0.1, 0.1, 0.05])
    assert [r["learning_rate"] for r in resumed_rows] == pytest.approx([0.1, 0.1, 0.05])
    assert [r["val_loss"] for r in resumed_rows] == pytest.approx([r["val_loss"] for r in straight_rows], rel=1e-6)
    np.testing.assert_allclose(resumed.get_weights()[0], straight.get_weights()[0], rtol=1e-6)
    assert straight.get_weights()[0][0, 0] == pytest.approx(0.2 * np.mean(LINE_X ** 2), rel=1e-5), \
        "both end with the best (first) epoch's weight"
