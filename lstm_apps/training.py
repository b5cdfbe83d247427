"""Training that never loses work: model.fit with the project's own backup, best checkpoint, early stopping and logs.

Run-dir layout (every task): config.yaml, backup/ (while a run is unfinished), best.weights.h5, history.csv,
logs/ (TensorBoard), learning_curve.png, model.keras (written last and atomically: its presence = finished run).

Resuming uses no Keras internals. history.csv is the run's memory (`lstm_apps.history`): the best checkpoint, early
stopping and the learning-rate decay are pure functions of its rows (`best_row`, `should_stop`, `decays`,
`decayed_learning_rate`, each mirroring the Keras 3.15 callback it replaces: ModelCheckpoint(save_best_only),
EarlyStopping and ReduceLROnPlateau, min_delta 0, cooldown 0), and `RunMonitor` applies them after every epoch. So
a resumed run decides exactly as an uninterrupted one would, by construction. The backup (`Backup`,
`restore_backup`) holds the model's and the optimizer's variables and the epoch to resume at; `fit` restores it
before `model.fit(initial_epoch=)` and cuts history.csv back to the epochs before that one, so the history always
describes the weights in the backup.
"""
import math
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

import keras
import tensorflow as tf

from lstm_apps import distribute
from lstm_apps.errors import ConfigError
from lstm_apps.history import (append_history, best_row, check_mode, decayed_learning_rate, decays,  # noqa: F401
                               keep_history_before, plot_learning_curve, read_history, should_stop)

from lstm_apps.run_dir import (BACKUP_DIR, BEST_WEIGHTS_FILE, HISTORY_FILE, MODEL_FILE, load_json, save_json_atomic,
                               save_model)


# train.optimizer -> Keras optimizer class (every one takes learning_rate and global_clipnorm)
OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "sgd": keras.optimizers.SGD,
}


def optimizer_class(name):
    """OPTIMIZERS[name], or one ConfigError line naming the known ones (the runner checks it before reading data)."""
    if name not in OPTIMIZERS:
        raise ConfigError(f"train.optimizer: unknown optimizer '{name}' (known: {', '.join(OPTIMIZERS)})")
    return OPTIMIZERS[name]


def make_optimizer(name, learning_rate, global_clipnorm=None):
    """An optimizer from OPTIMIZERS; gradients are clipped by their global norm when `global_clipnorm` > 0."""
    return optimizer_class(name)(learning_rate, global_clipnorm=global_clipnorm or None)


def set_seed(seed, deterministic=False):
    """Seed Python, NumPy and TF; with `deterministic`, also make TF ops deterministic (slower)."""
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


class EpochTimer(keras.callbacks.Callback):
    """Add `epoch_seconds` (wall time of the epoch, validation included) to the logs, so history.csv and
    TensorBoard say how long each epoch took, also across resumed sessions. Must come before the loggers."""

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self.started


class LearningCurvePlot(keras.callbacks.Callback):
    """Redraw learning_curve.png from history.csv after every epoch (so it covers resumed epochs too)."""

    def __init__(self, run_dir):
        super().__init__()
        self.run_dir = Path(run_dir)

    def on_epoch_end(self, epoch, logs=None):
        plot_learning_curve(self.run_dir)


def learning_rate_decay(train_cfg):
    """(factor, patience) from train.lr_decay (the factor; 1 = off) and train.lr_patience, or None when off or the
    task has no such keys. The decay watches val_loss."""
    if train_cfg.get("lr_decay", 1.0) >= 1:
        return None
    if train_cfg["lr_decay"] <= 0:
        raise ConfigError(f"train.lr_decay: {train_cfg['lr_decay']} must be > 0 (a factor; 1 = off)")
    return train_cfg["lr_decay"], train_cfg["lr_patience"]


def learning_rate_of(optimizer):
    """The optimizer's current learning rate as a float (a LearningRateSchedule: its value at the current step)."""
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def learning_rate_variable(optimizer):
    """The optimizer's learning-rate variable (public API), for a rate that can be set; a schedule cannot."""
    variable = optimizer.learning_rate
    if not isinstance(variable, keras.Variable):
        raise ConfigError("train.lr_decay needs a constant learning rate, not a LearningRateSchedule (set "
                          "train.lr_decay: 1)")
    return variable


# --------------------------------------------------------------------------------------------- callbacks
class RunMonitor(keras.callbacks.Callback):
    """The one callback that keeps a run's record and decides from it, after every epoch, in this order:

    1. adds `learning_rate` (the rate used during the epoch) to the logs and appends the row to history.csv
       (`append_history`: one header; a resumed session keeps the existing columns);
    2. from the whole history: saves best.weights.h5 (atomically) when this epoch is the best (`best_row`), sets
       the learning rate of the next epoch (`decayed_learning_rate`, when `decay` = (factor, patience)), and stops
       the run when `should_stop` says so.

    At the start of training it sets the learning rate the history implies, so a resumed run carries on with the
    decayed rate whatever the backup held. `initial_learning_rate` is the run's undecayed rate (train.learning_rate);
    `fit` reads it from the optimizer before restoring a backup. None: the optimizer's rate at the start of training
    (right for a run that starts from scratch). Put it after the callbacks that add to the logs (EpochTimer)."""

    def __init__(self, run_dir, monitor, mode, patience, decay=None, initial_learning_rate=None, verbose=0):
        super().__init__()
        check_mode(mode)
        self.run_dir = Path(run_dir)
        self.monitor, self.mode, self.patience = monitor, mode, patience
        self.decay = decay
        self.initial_learning_rate = initial_learning_rate
        self.verbose = verbose
        self.warned_monitor = False

    @property
    def history_path(self):
        return self.run_dir / HISTORY_FILE

    def on_train_begin(self, logs=None):
        if self.decay is None:
            return
        optimizer = self.model.optimizer
        if self.initial_learning_rate is None:
            self.initial_learning_rate = learning_rate_of(optimizer)
        rows = read_history(self.history_path)
        learning_rate_variable(optimizer).assign(decayed_learning_rate(rows, self.initial_learning_rate, *self.decay))

    def on_epoch_end(self, epoch, logs=None):
        logs = {} if logs is None else logs
        optimizer = self.model.optimizer
        rate = learning_rate_of(optimizer)
        logs["learning_rate"] = rate
        rows = append_history(self.history_path, epoch, logs)
        if logs.get(self.monitor) is None and not self.warned_monitor:
            self.warned_monitor = True
            warnings.warn(f"train.monitor: '{self.monitor}' is not among the logged values ({', '.join(logs)}); "
                          "no best checkpoint or early stopping", stacklevel=2)

        best = best_row(rows, self.monitor, self.mode)
        if best is not None and int(best["epoch"]) == epoch:
            path = self.run_dir / BEST_WEIGHTS_FILE
            tmp = path.with_name(f".tmp-{path.name}")
            self.model.save_weights(str(tmp))
            os.replace(tmp, path)
        if self.decay is not None:
            learning_rate_variable(optimizer).assign(decayed_learning_rate(rows, self.initial_learning_rate,
                                                                            *self.decay))
            if self.verbose and decays(rows, self.decay[1]) > decays(rows[:-1], self.decay[1]):
                print(f"\nEpoch {epoch + 1}: val_loss stopped improving; learning rate "
                      f"{rate:.4g} -> {learning_rate_of(optimizer):.4g}", flush=True)
        if should_stop(rows, self.monitor, self.mode, self.patience):
            self.model.stop_training = True
            if self.verbose:
                print(f"\nEpoch {epoch + 1}: early stopping ({self.monitor} did not improve for "
                      f"{self.patience} epoch(s))", flush=True)


BACKUP_STATE_FILE = "state.json"
LEGACY_BACKUP_STATE_FILE, LEGACY_BACKUP_WEIGHTS_FILE = "training_metadata.json", "latest.weights.h5"  # Keras's


class Backup(keras.callbacks.Callback):
    """The run's backup in `backup_dir`: the model's variables with the optimizer's (`model.save_weights` holds
    both in Keras 3) and state.json = {"epoch": the epoch to resume at, "weights": the weights file}.

    Written after every epoch (state: the next epoch) and, when `save_freq` is a number, also every `save_freq` batches
    (the epoch in progress: a resumed run trains that epoch again from its first batch). Each weights file is
    written beside and renamed, then state.json (written atomically) is switched to it: a kill at any moment
    leaves a backup whose epoch and weights belong together. Put it after RunMonitor, so the epoch's history row
    is written before the backup that skips it. Restore with `restore_backup` before model.fit; `fit` removes the
    folder once model.keras is written."""

    def __init__(self, backup_dir, save_freq="epoch"):
        super().__init__()
        if save_freq != "epoch" and not (isinstance(save_freq, int) and save_freq > 0):
            raise ConfigError(f"train.backup_every: {save_freq!r}; expected 'epoch' or a number of batches > 0")
        self.backup_dir = Path(backup_dir)
        self.save_freq = save_freq
        self.epoch = 0
        self.last_batch = -1
        self.batches_since_save = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.last_batch = epoch, -1

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        # batches run since the last call (more than one with steps_per_execution), as Keras counts them
        self.batches_since_save += batch - self.last_batch if batch > self.last_batch else batch + 1
        self.last_batch = batch
        if self.batches_since_save >= self.save_freq:
            self.save(self.epoch, batch)

    def on_epoch_end(self, epoch, logs=None):
        self.save(epoch + 1)

    def save(self, epoch, batch=None):
        """Back up the model as the state to resume at `epoch` (after `batch` of it, for the record)."""
        self.batches_since_save = 0
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{epoch}.weights.h5" if batch is None else f"epoch-{epoch}-batch-{batch}.weights.h5"
        tmp = self.backup_dir / ".tmp.weights.h5"
        self.model.save_weights(str(tmp))
        os.replace(tmp, self.backup_dir / name)
        save_json_atomic(self.backup_dir / BACKUP_STATE_FILE, {"epoch": epoch, "batch": batch, "weights": name})
        for stale in [*self.backup_dir.glob("*.weights.h5"), self.backup_dir / LEGACY_BACKUP_STATE_FILE]:
            if stale.name != name:
                stale.unlink(missing_ok=True)


def read_backup(backup_dir):
    """(epoch to resume at, weights file) of the backup in `backup_dir`, or None when there is none. Also reads the
    backup of Keras's BackupAndRestore, which earlier versions used (latest.weights.h5, training_metadata.json)."""
    backup_dir = Path(backup_dir)
    for state_file, weights in ((BACKUP_STATE_FILE, None), (LEGACY_BACKUP_STATE_FILE, LEGACY_BACKUP_WEIGHTS_FILE)):
        if (backup_dir / state_file).exists():
            state = load_json(backup_dir / state_file)
            path = backup_dir / (weights or state["weights"])
            if path.exists():
                return int(state["epoch"]), path
    return None


def restore_backup(model, backup_dir):
    """Load the backup in `backup_dir` into a compiled, built model (its optimizer built first, so that its
    variables are restored too) and return the epoch to resume at: pass it to model.fit as initial_epoch. 0 when
    there is no backup."""
    found = read_backup(backup_dir)
    if found is None:
        return 0
    epoch, weights = found
    if not model.built:
        raise ValueError(f"{backup_dir}: the model must be built before its backup can be restored")
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.load_weights(str(weights))
    return epoch


# --------------------------------------------------------------------------------------------- fit
def fit(model, train_ds, val_ds, run_dir, train_cfg, steps_per_epoch=None, extra_callbacks=(), distribution=None,
        make_metrics=None):
    """model.fit with the standard callbacks, resuming from run_dir's backup; restores the best weights and writes
    model.keras atomically. With a `distribution` (lstm_apps.distribute) the same callbacks run in
    `distributed_fit` instead; the chief writes the run dir, every other worker keeps its backup and history in its
    own folder (RUN_DIR/workers/N), and every worker resumes from the chief's backup.

    train_cfg keys: epochs, monitor, monitor_mode, patience, backup_every ("epoch" or a number of steps), verbose,
    clipnorm (the distributed loop clips; `fit` leaves it to the optimizer); optionally lr_decay and lr_patience
    (see `learning_rate_decay`). `make_metrics`: a function returning new metric objects (the distributed loop
    keeps its own; `fit` uses the compiled ones).

    On resume: the backup gives the weights, the optimizer's variables and the epoch to start at; history.csv is cut
    back to the epochs before it (rows of an epoch that is trained again go); RunMonitor then sets the learning rate
    from that history, and its decisions read the same history, so nothing else has to be carried over. A run whose
    history already ends in early stopping (killed before model.keras was written) trains no further.
    """
    run_dir = Path(run_dir)
    chief = distribution is None or distribution.is_chief
    own_dir = run_dir if chief else distribution.own_dir(run_dir)
    monitor, mode = train_cfg["monitor"], train_cfg["monitor_mode"]
    check_mode(mode)  # a bad train.monitor_mode fails before any work
    decay = learning_rate_decay(train_cfg)
    initial_rate = None
    if decay is not None:  # the undecayed rate, read before the backup's (decayed) one replaces it
        initial_rate = float(learning_rate_variable(model.optimizer).numpy())

    with distribute.scope(distribution):  # (restoring builds the optimizer)
        initial_epoch = restore_backup(model, run_dir / BACKUP_DIR)  # the chief's backup, on every worker
    if not chief:  # a worker's own history starts as the chief's (its decisions must be the chief's)
        own_dir.mkdir(parents=True, exist_ok=True)
        (own_dir / HISTORY_FILE).unlink(missing_ok=True)
        if (run_dir / HISTORY_FILE).exists():
            shutil.copyfile(run_dir / HISTORY_FILE, own_dir / HISTORY_FILE)
    history_path = own_dir / HISTORY_FILE
    keep_history_before(history_path, initial_epoch)
    if should_stop(read_history(history_path), monitor, mode, train_cfg["patience"]):
        initial_epoch = train_cfg["epochs"]  # stopped early already: nothing left to train
    verbose = train_cfg.get("verbose", "auto") if chief else 0
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    # TensorBoard comes before RunMonitor, so it logs the learning rate of the epoch, not the next one's; Backup
    # comes after it, so the backup that skips an epoch is written after the epoch's history row.
    callbacks = [
        EpochTimer(),
        *extra_callbacks,
        *([keras.callbacks.TensorBoard(str(run_dir / "logs"))] if chief else []),
        RunMonitor(own_dir, monitor, mode, train_cfg["patience"], decay=decay, initial_learning_rate=initial_rate,
                   verbose=verbose),
        Backup(own_dir / BACKUP_DIR, save_freq=train_cfg["backup_every"]),
        *([LearningCurvePlot(run_dir)] if chief else []),
        keras.callbacks.TerminateOnNaN(),
    ]
    epochs, initial_epoch = train_cfg["epochs"], min(initial_epoch, train_cfg["epochs"])
    per_worker = isinstance(train_ds, distribute.PerWorker)
    train_ds = train_ds.dataset if per_worker else train_ds
    if distribution is None:
        history = model.fit(train_ds, validation_data=val_ds, epochs=epochs, callbacks=callbacks,
                            steps_per_epoch=steps_per_epoch, verbose=verbose, shuffle=False,
                            initial_epoch=initial_epoch)
    else:
        history = distributed_fit(model, distribution.strategy, train_ds, val_ds, callbacks, epochs, initial_epoch,
                                  verbose, make_metrics, train_cfg["clipnorm"], per_worker)
    losses = history.history.get("loss", [])
    if losses and not all(math.isfinite(v) for v in losses):
        if chief:
            shutil.rmtree(run_dir / BACKUP_DIR, ignore_errors=True)  # a rerun starts afresh, not from diverged weights
        raise ConfigError("train: the loss became NaN/inf; lower train.learning_rate")
    if (own_dir / BEST_WEIGHTS_FILE).exists():
        model.load_weights(str(own_dir / BEST_WEIGHTS_FILE))
    if chief:
        save_model(model, run_dir / MODEL_FILE)
        shutil.rmtree(run_dir / BACKUP_DIR, ignore_errors=True)  # only now: until model.keras exists, the backup is the run
        plot_learning_curve(run_dir)
    return history


def distributed_fit(model, strategy, train_ds, val_ds, callbacks, epochs, initial_epoch, verbose, make_metrics,
                    clipnorm=0, per_worker=False):
    """The epochs of `model.fit` under a tf.distribute strategy, calling the same callbacks in the same order
    (Keras 3 `fit` fails under MultiWorkerMirroredStrategy, keras-team/keras#20585). `train_ds` and `val_ds` yield
    global batches; each replica gets its slice (`distribute.replica_slice`). `per_worker`: `train_ds` yields this
    worker's part of each global batch (`distribute.PerWorker`), sliced among its local replicas.

    Exact across replicas, whatever the slices' sizes: a replica's loss is its summed loss over the global batch's
    count (`losses.sum_and_count`, counts summed across replicas), so the replicas' summed gradients are those
    of the global batch's mean loss. `clipnorm` > 0 clips the summed gradients by their global norm before the
    optimizer's own cross-replica sum (Keras would clip each replica's share). The logged loss is, as in `fit`, the
    mean of the global batches' losses weighted by their rows; metric variables sum across replicas, so
    accuracy and perplexity are those of the whole split. The model must be compiled (optimizer, loss) inside
    `strategy.scope()`; `make_metrics()` returns the task's metrics, created here in that scope."""
    from lstm_apps.losses import sum_and_count

    SUM = tf.distribute.ReduceOp.SUM
    replicas = strategy.num_replicas_in_sync
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)
        train_metrics = [keras.metrics.Mean(name="loss"), *make_metrics()]
        val_metrics = [keras.metrics.Mean(name="loss"), *make_metrics()]

    def batch_loss(x, y, training):
        """(predictions, this replica's share of the global batch's loss, the global batch's loss)."""
        context = tf.distribute.get_replica_context()
        y_pred = model(x, training=training)
        total, count = sum_and_count(model.loss, y, y_pred)
        count = tf.maximum(context.all_reduce(SUM, count), 1.0)
        regularization = tf.add_n(model.losses) if model.losses else 0.0
        return y_pred, total / count + regularization / replicas, total, count, regularization

    def update(metrics, x, y, y_pred, total, count, regularization):
        context = tf.distribute.get_replica_context()
        rows = tf.shape(tf.nest.flatten(x)[0])[0]
        metrics[0].update_state(context.all_reduce(SUM, total) / count + regularization, sample_weight=rows)
        for metric in metrics[1:]:
            metric.update_state(y, y_pred)

    def train_replica(batch):
        x, y = batch
        with tf.GradientTape() as tape:
            y_pred, share, *parts = batch_loss(x, y, training=True)
        grads = tape.gradient(share, model.trainable_variables)
        if clipnorm:
            grads = [tf.convert_to_tensor(g) for g in grads]
            grads = tf.distribute.get_replica_context().all_reduce(SUM, grads)
            grads, _ = tf.clip_by_global_norm(grads, clipnorm)
            grads = [g / replicas for g in grads]  # the optimizer sums them across replicas again
        model.optimizer.apply(grads, model.trainable_variables)
        update(train_metrics, x, y, y_pred, *parts)

    def val_replica(batch):
        x, y = batch
        y_pred, _, *parts = batch_loss(x, y, training=False)
        update(val_metrics, x, y, y_pred, *parts)

    @tf.function(reduce_retracing=True)  # batch shapes vary (buckets, a short last batch): traced once or twice
    def train_step(batch):
        strategy.run(train_replica, args=(batch,))
        return {metric.name: metric.result() for metric in train_metrics}

    @tf.function(reduce_retracing=True)
    def val_step(batch):
        strategy.run(val_replica, args=(batch,))
        return {metric.name: metric.result() for metric in val_metrics}

    train_steps = int(train_ds.cardinality())
    callback_list = keras.callbacks.CallbackList(callbacks, add_history=True, add_progbar=verbose != 0,
                                                 verbose=verbose, epochs=epochs,
                                                 steps=train_steps if train_steps >= 0 else None, model=model)
    model.stop_training = False
    callback_list.on_train_begin()
    logs = {}
    for epoch in range(initial_epoch, epochs):
        for metric in train_metrics:
            metric.reset_state()
        callback_list.on_epoch_begin(epoch)
        for step, batch in enumerate(train_ds):  # a new iterator every epoch, as in fit: a new shuffle
            callback_list.on_train_batch_begin(step)
            logs = python_logs(train_step(distribute.distributed_batch(strategy, batch, per_worker)))
            callback_list.on_train_batch_end(step, logs)
            if model.stop_training:
                break
        epoch_logs = dict(logs)
        callback_list.on_test_begin()
        for metric in val_metrics:
            metric.reset_state()
        val_logs = {}
        for step, batch in enumerate(val_ds):
            callback_list.on_test_batch_begin(step)
            val_logs = python_logs(val_step(distribute.distributed_batch(strategy, batch)))
            callback_list.on_test_batch_end(step, val_logs)
        callback_list.on_test_end(val_logs)
        epoch_logs.update({f"val_{name}": value for name, value in val_logs.items()})
        callback_list.on_epoch_end(epoch, epoch_logs)
        logs = epoch_logs
        if model.stop_training:
            break
    callback_list.on_train_end(logs)
    return next(c for c in callback_list.callbacks if isinstance(c, keras.callbacks.History))


def python_logs(logs):
    return {name: float(value) for name, value in logs.items()}
