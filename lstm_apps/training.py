"""Training that never loses work: model.fit with backup/restore, best-checkpoint, early stopping and logs.

Run-dir layout (every task): config.yaml, backup/ (while a run is unfinished), best.weights.h5, history.csv,
logs/ (TensorBoard), learning_curve.png, model.keras (written last and atomically: its presence = finished run).
"""
import csv
import math
import os
import sys
import time
from pathlib import Path

import keras
import tensorflow as tf

from lstm_apps.config import dump, write_atomic
from lstm_apps.errors import ConfigError, RunDirError

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.yaml"
HISTORY_FILE = "history.csv"
BEST_WEIGHTS_FILE = "best.weights.h5"


# train.optimizer -> Keras optimizer class (every one takes learning_rate and global_clipnorm)
OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "sgd": keras.optimizers.SGD,
}


def make_optimizer(name, learning_rate, global_clipnorm=None):
    """An optimizer from OPTIMIZERS; gradients are clipped by their global norm when `global_clipnorm` > 0."""
    if name not in OPTIMIZERS:
        raise ConfigError(f"train.optimizer: unknown optimizer '{name}' (known: {', '.join(OPTIMIZERS)})")
    return OPTIMIZERS[name](learning_rate, global_clipnorm=global_clipnorm or None)


def set_seed(seed, deterministic=False):
    """Seed Python, NumPy and TF; with `deterministic`, also make TF ops deterministic (slower)."""
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def prepare_run_dir(run_dir, cfg):
    """Create or reopen a run dir: a finished run is never overwritten; an unfinished one resumes only with the
    same configuration. Returns True when resuming."""
    run_dir = Path(run_dir)
    if (run_dir / MODEL_FILE).exists():
        raise RunDirError(f"{run_dir}: holds a finished run ({MODEL_FILE}); choose a new --run-dir")
    if (run_dir / CONFIG_FILE).exists():
        require_same_config(run_dir, cfg)
        return True
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / CONFIG_FILE, dump(cfg))
    return False


def require_same_config(run_dir, cfg):
    """Work already in a run dir (a backup, a finished model) may be reused only under the configuration it used."""
    import yaml

    saved = Path(run_dir) / CONFIG_FILE
    differing = _first_difference(yaml.safe_load(saved.read_text(encoding="utf-8")), cfg)
    if differing:
        raise ConfigError(f"{saved}: this run used a different value for '{differing}'; "
                          f"rerun with the same options to resume, or choose a new --run-dir")


def _first_difference(a, b, prefix=""):
    for key in sorted(set(a) | set(b)):
        left, right = a.get(key), b.get(key)
        if isinstance(left, dict) and isinstance(right, dict):
            found = _first_difference(left, right, f"{prefix}{key}.")
            if found:
                return found
        elif left != right:
            return f"{prefix}{key}"
    return None


def read_history(history_path):
    """history.csv as a list of {column: float}; a missing file gives [] and a missing value ("NA") gives None."""
    if not Path(history_path).exists():
        return []
    with open(history_path, newline="") as f:
        return [{key: None if value in ("", "NA") else float(value) for key, value in row.items()}
                for row in csv.DictReader(f)]


class EpochTimer(keras.callbacks.Callback):
    """Add `epoch_seconds` (wall time of the epoch, validation included) to the logs, so history.csv and
    TensorBoard say how long each epoch took, also across resumed sessions. Must come before the loggers."""

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self.started


class BackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras's backup callback, with the epoch in progress recorded in every mid-epoch backup. Keras 3.15 learns
    the epoch only when one ends, so a batch backup taken after a resume, before the resumed epoch ends, says
    epoch 0: a second interruption there would restart the run from its first epoch."""

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch


class HistoryLogger(keras.callbacks.CSVLogger):
    """CSVLogger that keeps the columns of an existing history.csv when a run resumes: Keras takes the columns from
    the first epoch of each session, so a column that came or went (a newer version, an added callback) would
    shift every value of the resumed rows under the wrong header."""

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if not self.append_header:  # appending under an existing header
            with open(self.filename, newline="") as f:
                self.keys = [key for key in next(csv.reader(f)) if key != "epoch"]


class LearningCurvePlot(keras.callbacks.Callback):
    """Redraw learning_curve.png from history.csv after every epoch (so it covers resumed epochs too)."""

    def __init__(self, run_dir):
        super().__init__()
        self.run_dir = Path(run_dir)

    def on_epoch_end(self, epoch, logs=None):
        plot_learning_curve(self.run_dir)


def plot_learning_curve(run_dir):
    """learning_curve.png from history.csv (drawn on a bare Figure: no pyplot, so a notebook's backend is kept)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    run_dir = Path(run_dir)
    rows = read_history(run_dir / HISTORY_FILE)
    if not rows:
        return
    metrics = [k for k in rows[0] if not k.startswith("val_") and k not in ("epoch", "learning_rate", "epoch_seconds")]
    fig = Figure(figsize=(5 * len(metrics), 3.5))
    axes = fig.subplots(1, len(metrics), squeeze=False)
    epochs = [int(r["epoch"]) + 1 for r in rows]
    for ax, name in zip(axes[0], metrics):  # a missing value (None) leaves a gap in its line
        ax.plot(epochs, [r[name] for r in rows], label=f"train {name}")
        if f"val_{name}" in rows[0]:
            ax.plot(epochs, [r[f"val_{name}"] for r in rows], label=f"validation {name}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(name)
        ax.legend()
    fig.tight_layout()
    tmp = run_dir / ".learning_curve.tmp.png"
    fig.savefig(tmp, dpi=90)
    os.replace(tmp, run_dir / "learning_curve.png")


class ResumedMonitors(keras.callbacks.Callback):
    """Carry the best checkpoint, early stopping and the learning-rate decay across a resume.

    Keras resets these callbacks at the start of every fit, so a resumed run would take its first epoch as the best,
    wait out its whole patience again and decay the learning rate late. This replays the monitored value of every
    epoch in history.csv into them, as if the run had not stopped; the decayed learning rate itself comes back with
    the optimizer's variables in the backup. Must come after the callbacks it replays into."""

    def __init__(self, history_path, callbacks):
        super().__init__()
        self.history_path = history_path
        self.callbacks = callbacks

    def on_train_begin(self, logs=None):
        rows = read_history(self.history_path)
        for callback in self.callbacks if rows else []:
            replay = next((fn for kind, fn in MONITOR_REPLAYS.items() if isinstance(callback, kind)), None)
            if replay is None:
                continue
            if callback.monitor_op is None:
                callback._set_monitor_op()
            for row in rows:
                if row.get(callback.monitor) is not None:
                    replay(callback, int(row["epoch"]), row[callback.monitor])


def _replay_checkpoint(callback, epoch, value):
    if callback._is_improvement(value, callback.best):
        callback.best = value


def _replay_early_stopping(callback, epoch, value):
    """EarlyStopping.on_epoch_end's bookkeeping, without stopping."""
    if epoch < callback.start_from_epoch:
        return
    callback.wait += 1
    if callback._is_improvement(value, callback.best):
        callback.best, callback.best_epoch = value, epoch
        if callback.baseline is None or callback._is_improvement(value, callback.baseline):
            callback.wait = 0


def _replay_learning_rate_decay(callback, epoch, value):
    """ReduceLROnPlateau.on_epoch_end's bookkeeping; the optimizer already holds the reduced rate."""
    if callback.in_cooldown():
        callback.cooldown_counter -= 1
        callback.wait = 0
    if callback._is_improvement(value, callback.best):
        callback.best, callback.wait = value, 0
    elif not callback.in_cooldown():
        callback.wait += 1
        if callback.wait >= callback.patience:
            callback.cooldown_counter, callback.wait = callback.cooldown, 0


# Keras monitor callback -> how one past epoch's monitored value updates its state (for ResumedMonitors;
# each mirrors the callback's on_epoch_end in Keras 3.15)
MONITOR_REPLAYS = {
    keras.callbacks.ModelCheckpoint: _replay_checkpoint,
    keras.callbacks.EarlyStopping: _replay_early_stopping,
    keras.callbacks.ReduceLROnPlateau: _replay_learning_rate_decay,
}


def learning_rate_decay(train_cfg):
    """ReduceLROnPlateau from train.lr_decay (the factor; 1 = off) and train.lr_patience, for tasks that have them."""
    if train_cfg.get("lr_decay", 1.0) >= 1:
        return []
    return [keras.callbacks.ReduceLROnPlateau("val_loss", factor=train_cfg["lr_decay"],
                                              patience=train_cfg["lr_patience"], min_delta=0.0, verbose=1)]


def fit(model, train_ds, val_ds, run_dir, train_cfg, steps_per_epoch=None, extra_callbacks=()):
    """model.fit with the standard callbacks; restores the best weights and writes model.keras atomically.

    train_cfg keys: epochs, monitor, monitor_mode, patience, backup_every ("epoch" or a number of steps), verbose;
    optionally lr_decay and lr_patience (see `learning_rate_decay`).
    """
    run_dir = Path(run_dir)
    monitor, mode = train_cfg["monitor"], train_cfg["monitor_mode"]
    best_path = run_dir / BEST_WEIGHTS_FILE
    # Callbacks that change the training state at an epoch's end (the learning rate) come before the backup, so
    # that the backup holds their effect.
    callbacks = [
        EpochTimer(),
        *extra_callbacks,
        *learning_rate_decay(train_cfg),
        BackupAndRestore(str(run_dir / "backup"), save_freq=train_cfg["backup_every"]),
        keras.callbacks.ModelCheckpoint(str(best_path), monitor=monitor, mode=mode, save_best_only=True,
                                        save_weights_only=True),
        keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=train_cfg["patience"]),
        HistoryLogger(str(run_dir / HISTORY_FILE), append=True),
        keras.callbacks.TensorBoard(str(run_dir / "logs")),
        LearningCurvePlot(run_dir),
        keras.callbacks.TerminateOnNaN(),
    ]
    callbacks.append(ResumedMonitors(run_dir / HISTORY_FILE, callbacks))
    verbose = train_cfg.get("verbose", "auto")
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    history = model.fit(train_ds, validation_data=val_ds, epochs=train_cfg["epochs"], callbacks=callbacks,
                        steps_per_epoch=steps_per_epoch, verbose=verbose, shuffle=False)
    losses = history.history.get("loss", [])
    if losses and not all(math.isfinite(v) for v in losses):
        raise ConfigError("train: the loss became NaN/inf; lower train.learning_rate")
    if best_path.exists():
        model.load_weights(str(best_path))
    save_model(model, run_dir / MODEL_FILE)
    plot_learning_curve(run_dir)
    return history


def save_model(model, path):
    """Save a .keras file atomically (written beside, then renamed)."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}")
    model.save(str(tmp))
    os.replace(tmp, path)


def load_model(run_dir):
    import lstm_apps.layers  # noqa: F401  registers the custom layers with Keras before deserializing

    path = Path(run_dir) / MODEL_FILE
    if not path.exists():
        raise RunDirError(f"{run_dir}: no finished model ({MODEL_FILE}); run train first (or let it finish)")
    return keras.saving.load_model(str(path))


def save_json_atomic(path, obj):
    import json
    write_atomic(path, json.dumps(obj, indent=2) + "\n")


def load_json(path):
    import json
    path = Path(path)
    if not path.exists():
        raise RunDirError(f"{path.parent}: missing {path.name}; expected a run dir written by train")
    return json.loads(path.read_text(encoding="utf-8"))
