"""SIGKILL in the middle of an epoch, the same command again: training continues from the backup."""
import csv
import os
import random
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


@pytest.mark.filterwarnings("ignore:train.monitor:UserWarning")
def test_resumed_history_keeps_its_columns(tmp_path):
    """A session that logs a column the first one did not (or lacks one) still writes under the right headers."""
    from lstm_apps.training import RunMonitor, plot_learning_curve

    path = tmp_path / "history.csv"
    path.write_text("epoch,loss,val_loss\n0,2.0,2.5\n")
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    monitor = RunMonitor(tmp_path, "val_loss", "min", patience=10)  # the resumed session's monitor
    monitor.set_model(model)
    monitor.on_train_begin()
    monitor.on_epoch_end(1, {"epoch_seconds": 9.0, "loss": 1.5, "val_loss": 2.25})
    monitor.on_epoch_end(2, {"loss": 1.25})
    monitor.on_train_end()
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["epoch"], r["loss"], r["val_loss"]) for r in rows] == [("0", "2.0", "2.5"), ("1", "1.5", "2.25"),
                                                                     ("2", "1.25", "NA")]
    assert path.read_text().count("epoch") == 1, "one header"
    best = training.best_row(training.read_history(path), "val_loss", "min")
    assert best["val_loss"] == 2.25, "the resumed checkpoint's best skips the missing value"
    assert best["epoch"] == 1 and (tmp_path / "best.weights.h5").exists(), "saved at the best epoch"
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


@pytest.mark.parametrize("backup", ["lstm_apps", "keras"])
def test_a_second_interruption_after_a_resume_keeps_the_epoch(backup, tmp_path):
    """Interrupted mid-epoch, resumed, interrupted again before the resumed epoch ends: the third session must
    still continue from epoch 2. "lstm_apps" resumes through training.fit (its own backup, every 2 batches);
    "keras" is a canary: Keras's own BackupAndRestore records epoch 0 there and restarts the run, which is why
    lstm_apps does not use it."""
    x, y = np.ones((40, 3), np.float32), np.zeros((40, 1), np.float32)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    train_cfg = {"epochs": 5, "monitor": "loss", "monitor_mode": "min", "patience": 10, "backup_every": 2,
                 "verbose": 0}

    def session(*callbacks):
        if backup == "lstm_apps":
            return training.fit(model, tf.data.Dataset.from_tensor_slices((x, y)).batch(4), None, tmp_path / "run",
                                train_cfg, extra_callbacks=callbacks)
        return model.fit(x, y, batch_size=4, epochs=5, verbose=0,
                         callbacks=[keras.callbacks.BackupAndRestore(str(tmp_path / "backup"), save_freq=2),
                                    *callbacks])

    for _ in range(2):  # both sessions stop in epoch 2, after the backup of its 6th batch
        with pytest.raises(KeyboardInterrupt):
            session(Interrupt(epoch=2, batch=6))
    resumed_epochs = session().epoch
    if backup == "lstm_apps":
        assert resumed_epochs == [2, 3, 4]
    else:
        assert resumed_epochs == [0, 1, 2, 3, 4], \
            "Keras fixed its BackupAndRestore (the reason lstm_apps has its own backup)"


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


# ------------------------------------------------------------------- the decisions, as functions of the history
def rows_of(values, monitor="val_loss"):
    return [{"epoch": float(epoch), monitor: value} for epoch, value in enumerate(values)]


def test_best_row_is_the_first_strict_best_and_skips_missing_values():
    rows = rows_of([3.0, None, 2.0, 2.0, 2.5])
    assert training.best_row(rows, "val_loss", "min")["epoch"] == 2, "a tie keeps the earlier epoch"
    assert training.best_row(rows, "val_loss", "max")["epoch"] == 0
    assert training.best_row(rows_of([None, 1.0]), "val_loss", "max")["epoch"] == 1
    assert training.best_row(rows_of([None]), "val_loss", "min") is None
    assert training.best_row([], "val_loss", "min") is None
    with pytest.raises(training.ConfigError, match="monitor_mode"):
        training.best_row(rows, "val_loss", "auto")


def test_should_stop_counts_patience_from_the_best_epoch():
    worse = rows_of([1.0, 2.0, 3.0])
    assert [training.should_stop(worse[:n], "val_loss", "min", 2) for n in (1, 2, 3)] == [False, False, True]
    assert [training.should_stop(worse[:n], "val_loss", "min", 0) for n in (1, 2)] == [False, True]
    recovering = rows_of([3.0, 2.0, 4.0, 1.0, 5.0, 6.0])
    assert [training.should_stop(recovering[:n], "val_loss", "min", 2) for n in range(1, 7)] == [False] * 5 + [True]
    assert not training.should_stop(rows_of([1.0, 1.0, None, None]), "val_loss", "min", 2), \
        "a tie is no improvement, and a missing value does not count"
    assert training.should_stop(rows_of([1.0, 1.0, None, 1.0]), "val_loss", "min", 2)
    assert training.should_stop(rows_of([1.0, 0.5, 0.2], "val_accuracy"), "val_accuracy", "max", 2)


def test_decays_and_the_learning_rate_after_each_epoch():
    worse = rows_of([1.0, 2.0, 3.0])
    assert [training.decayed_learning_rate(worse[:n], 0.1, 0.5, 0) for n in range(4)] == \
        pytest.approx([0.1, 0.1, 0.05, 0.025]), "patience 0: every worse epoch halves the rate"
    assert [training.decays(rows_of([1.0, 2.0, 3.0, 4.0])[:n], 1) for n in range(5)] == [0, 0, 1, 2, 3]
    plateau = rows_of([1.0, 2.0, 0.5, 0.7, 0.8, None, 0.9])
    assert [training.decays(plateau[:n], 2) for n in range(1, 8)] == [0, 0, 0, 0, 1, 1, 1], \
        "an improvement restarts the count, a cut restarts it too"
    assert training.decayed_learning_rate(rows_of([1.0, 2.0, 3.0], "loss"), 0.1, 0.5, 0) == 0.1, "watches val_loss"


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_decisions_match_keras_callbacks():
    """EarlyStopping and ReduceLROnPlateau (as fit configured them before), driven through their public hooks on
    random histories with ties and missing values, decide as should_stop and decayed_learning_rate do."""
    rng = random.Random(0)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    for _ in range(150):
        mode, patience = rng.choice(["min", "max"]), rng.randrange(4)
        values = [rng.choice([1.0, 2.0, 3.0, 4.0, None]) for _ in range(rng.randrange(1, 10))]
        model.optimizer.learning_rate.assign(0.1)
        model.stop_training = False
        stopping = keras.callbacks.EarlyStopping("val_loss", mode=mode, patience=patience)
        decay = keras.callbacks.ReduceLROnPlateau("val_loss", factor=0.5, patience=patience, min_delta=0.0)
        for callback in (stopping, decay):
            callback.set_model(model)
            callback.on_train_begin()
        rows = rows_of(values)
        for n, value in enumerate(values, 1):
            logs = {} if value is None else {"val_loss": value}
            stopping.on_epoch_end(n - 1, dict(logs))
            decay.on_epoch_end(n - 1, dict(logs))
            assert model.stop_training == training.should_stop(rows[:n], "val_loss", mode, patience), values
            assert float(model.optimizer.learning_rate.numpy()) == \
                pytest.approx(training.decayed_learning_rate(rows[:n], 0.1, 0.5, patience), rel=1e-6), values
            if model.stop_training:
                break


def test_the_backup_holds_the_optimizer_and_the_epoch_atomically(tmp_path):
    """model.save_weights keeps the optimizer's variables (its step, learning rate and slots) in Keras 3: the
    restored model carries on from the same state; state.json names the one weights file left."""
    x, y = np.ones((8, 3), np.float32), np.zeros((8, 1), np.float32)

    def compiled():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(keras.optimizers.Adam(0.1), "mse")
        return model

    model = compiled()
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[training.Backup(tmp_path / "backup", 3)])
    model.optimizer.learning_rate.assign(0.025)
    backup = training.Backup(tmp_path / "backup")
    backup.set_model(model)
    backup.save(2)
    assert sorted(p.name for p in (tmp_path / "backup").iterdir()) == ["epoch-2.weights.h5", "state.json"]
    restored = compiled()
    assert training.restore_backup(restored, tmp_path / "backup") == 2
    assert int(restored.optimizer.iterations.numpy()) == 4
    assert float(restored.optimizer.learning_rate.numpy()) == pytest.approx(0.025)
    for mine, theirs in zip(restored.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    for mine, theirs in zip(restored.weights, model.weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    assert training.restore_backup(compiled(), tmp_path / "nothing") == 0


def test_a_resume_drops_the_history_of_the_epochs_it_trains_again(tmp_path):
    path = tmp_path / "history.csv"
    for epoch in range(3):
        training.append_history(path, epoch, {"loss": 1.0 / (epoch + 1), "val_loss": 2.0})
    training.keep_history_before(path, 2)
    assert [r["epoch"] for r in training.read_history(path)] == [0, 1]
    assert path.read_text().count("epoch") == 1
    training.keep_history_before(path, 0)
    assert training.read_history(path) == []
