"""Training on several devices and machines with tf.distribute: `train.distribution` names the strategy.

- `none`: one device, Keras `fit` (the default).
- `mirrored`: `tf.distribute.MirroredStrategy` over every local GPU, or over `train.devices` logical CPU devices
  when there is no GPU (how the tests and the benchmark run it on a CPU).
- `multi_worker`: `tf.distribute.MultiWorkerMirroredStrategy` from the standard `TF_CONFIG`; every worker runs the
  same command with the same `--run-dir`.

Both strategies train with `lstm_apps.training.distributed_fit` (Keras 3 `fit` fails under MultiWorkerMirrored,
keras-team/keras#20585). Every worker iterates the task's global batches exactly as `fit` would (the same
dataset object, so the same shuffles), and each replica trains on its slice of every batch (`replica_slice`).
Batch sizes stay global.
"""
import contextlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from lstm_apps.errors import ConfigError, LostWorkerError, library_reason

WORKERS_DIR = "workers"


@dataclass
class Distribution:
    """A strategy and this process's place in it. The chief (worker 0) holds the run-dir lock and writes the
    run's files; worker N > 0 keeps its own backup and history under RUN_DIR/workers/N."""

    name: str
    strategy: object
    worker: int = 0
    workers: int = 1

    @property
    def is_chief(self):
        return self.worker == 0

    def own_dir(self, run_dir):
        """Where this worker keeps its backup and history: the run dir for the chief, workers/N for the others."""
        return Path(run_dir) if self.is_chief else Path(run_dir) / WORKERS_DIR / str(self.worker)


def _mirrored(train_cfg):
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    devices = train_cfg.get("devices", 0)
    if gpus:
        names = [f"/gpu:{index}" for index in range(len(gpus))][:devices or None]
    else:
        count = max(devices, 1)
        cpu = tf.config.list_physical_devices("CPU")[0]
        if count > 1:  # before the runtime starts: the runner creates the strategy before any TF op runs
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
        names = [f"/cpu:{index}" for index in range(count)]
    return Distribution("mirrored", tf.distribute.MirroredStrategy(names))


def _multi_worker(train_cfg):
    import tensorflow as tf

    cluster, task = tf_config()
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    except (tf.errors.OpError, RuntimeError, ValueError) as error:  # e.g. the port is taken
        address = cluster[task["type"]][int(task["index"])]
        raise ConfigError(f"TF_CONFIG: this worker ({task['type']} {task['index']}) cannot serve at {address}: "
                          f"{library_reason(error)}") from None
    return Distribution("multi_worker", strategy, *_place(cluster, task))


def _place(cluster, task):
    """(this worker's number, the number of workers): the chief first, then the workers in order."""
    members = [(kind, index) for kind in ("chief", "worker") for index in range(len(cluster.get(kind, [])))]
    return members.index((task["type"], int(task["index"]))), len(members)


def worker_share(train_cfg):
    """(this worker's number, the number of workers) under multi_worker, else (0, 1): which part of a sharded
    dataset this process reads (`PerWorker`)."""
    if train_cfg.get("distribution") != "multi_worker":
        return 0, 1
    return _place(*tf_config())


@dataclass
class PerWorker:
    """A training dataset of this worker's own part of every global batch (read from its own shards), returned by
    a task instead of global batches: each worker's local replicas share its batches (`distributed_batch`). Every
    worker must yield the same number of batches per epoch (a collective per step)."""

    dataset: object


# train.distribution -> the function that builds it from the train config (None: no strategy, plain Keras fit)
DISTRIBUTIONS = {
    "none": None,
    "mirrored": _mirrored,
    "multi_worker": _multi_worker,
}


def check(train_cfg):
    """ConfigError for an unknown train.distribution, train.devices < 0, or multi_worker without a usable
    TF_CONFIG: before any data is read."""
    name = train_cfg.get("distribution", "none")
    if name not in DISTRIBUTIONS:
        raise ConfigError(f"train.distribution: unknown strategy '{name}' (known: {', '.join(DISTRIBUTIONS)})")
    devices = train_cfg.get("devices", 0)
    if not isinstance(devices, int) or isinstance(devices, bool) or devices < 0:
        raise ConfigError(f"train.devices: {devices!r}; expected a whole number >= 0 (0 = every local GPU)")
    if name == "multi_worker":
        tf_config()


def tf_config():
    """(cluster, task) from the TF_CONFIG environment variable, checked (one ConfigError line when unusable)."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise ConfigError("train.distribution multi_worker: TF_CONFIG is not set; expected e.g. "
                          '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", '
                          '"index": 0}} (docs/distributed.md)')
    try:
        parsed = json.loads(text)
        cluster, task = parsed["cluster"], parsed["task"]
        kind, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"TF_CONFIG: {error}; expected JSON with cluster and task {{type, index}}") from None
    if kind not in ("chief", "worker") or not 0 <= index < len(cluster.get(kind, [])):
        raise ConfigError(f"TF_CONFIG: task {task} is not one of the cluster's chief/worker entries")
    return cluster, task


def distribution(train_cfg):
    """The Distribution that train.distribution names, or None for `none`. Call it before TensorFlow runs any op:
    logical devices and the multi-worker runtime can only be set up before that."""
    check(train_cfg)
    build = DISTRIBUTIONS[train_cfg.get("distribution", "none")]
    return None if build is None else build(train_cfg)


def replica_slice(batch, replica, replicas):
    """Replica `replica`'s rows of a global batch (any nest of tensors with the rows first): the batch cut into
    `replicas` slices of nearly equal size, the first `rows % replicas` one row larger, in replica order; a slice
    may be empty. So the replicas of a step together train on exactly the global batch a single device would,
    whatever its size (a short last batch, a bucket of any size)."""
    import tensorflow as tf

    rows = tf.shape(tf.nest.flatten(batch)[0])[0]
    size, extra = rows // replicas, rows % replicas
    start = replica * size + tf.minimum(replica, extra)
    stop = start + size + tf.cast(replica < extra, tf.int32)
    return tf.nest.map_structure(lambda tensor: tensor[start:stop], batch)


def distributed_batch(strategy, batch, per_worker=False):
    """A global batch (read on this worker) as per-replica values: each local replica gets its `replica_slice`.
    `per_worker`: the batch is this worker's part of the global batch (`PerWorker`), shared by its local replicas."""
    local = len(strategy.extended.worker_devices)

    def value(context):
        if per_worker:
            return replica_slice(batch, context.replica_id_in_sync_group % local, local)
        return replica_slice(batch, context.replica_id_in_sync_group, context.num_replicas_in_sync)

    return strategy.experimental_distribute_values_from_function(value)


def scope(distribution):
    """The strategy's scope (variables created in it are distributed), or nothing without a distribution."""
    return distribution.strategy.scope() if distribution is not None else contextlib.nullcontext()


def barrier(distribution):
    """Return only when every worker has called it (a one-number all-reduce over every replica)."""
    import tensorflow as tf

    strategy = distribution.strategy

    @tf.function
    def all_reduce():
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.constant(1.0)), axis=None)

    all_reduce()


def replicas():
    """Replicas in sync of the strategy in scope (1 without one)."""
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


@contextlib.contextmanager
def per_replica_state():
    """Non-trainable variables created inside are per replica (SyncOnRead): a stateful LSTM's carried states,
    which hold different rows on every replica. Reading one outside a replica gives the first replica's value;
    assigning one there (a reset) sets every replica's. Without a strategy in scope it changes nothing."""
    import tensorflow as tf

    def creator(next_creator, **kwargs):
        if not kwargs.get("trainable", True):
            kwargs.update(synchronization=tf.VariableSynchronization.ON_READ,
                          aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        return next_creator(**kwargs)

    if not tf.distribute.has_strategy():
        yield
        return
    with tf.variable_creator_scope(creator):
        yield


def local_tf_configs(count):
    """TF_CONFIG values for `count` workers on this machine (127.0.0.1, free ports): to try multi_worker, in the
    tests and the benchmark. Each worker process gets one."""
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    addresses = [f"127.0.0.1:{sock.getsockname()[1]}" for sock in sockets]
    for sock in sockets:
        sock.close()
    return [json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})
            for index in range(count)]


LOST_TASK = re.compile(r"/job:(\w+)(?:/replica:\d+)?/task:(\d+)")


@contextlib.contextmanager
def peers_watched(distribution):
    """Turn the error a worker gets when a peer dies into one LostWorkerError line. On TF 2.21 a killed peer
    fails the next collective within a second (UnavailableError naming its task); a silent one, within ~10 s,
    by the coordination service's heartbeat (UnavailableError, or DeadlineExceededError naming no task)."""
    if distribution is None or distribution.name != "multi_worker":
        yield
        return
    import tensorflow as tf

    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError,
            tf.errors.CancelledError) as error:
        raise lost_worker_error(error, distribution) from None


def lost_worker_error(error, distribution):
    """A LostWorkerError naming the lost worker: the task the message names (not this one), else the other worker
    of a pair, else 'a worker'."""
    cluster, task = tf_config()
    mine = (task["type"], str(task["index"]))
    named = [found for found in LOST_TASK.findall(str(error)) if found != mine]
    if named:
        who = f"worker {named[-1][0]}:{named[-1][1]}"
    elif distribution.workers == 2:
        who = "worker " + ":".join(next((kind, str(index)) for kind in ("chief", "worker")
                                       for index in range(len(cluster.get(kind, [])))
                                       if (kind, str(index)) != mine))
    else:
        who = "a worker"
    return LostWorkerError(f"train.distribution multi_worker: lost contact with {who} "
                           f"({type(error).__name__}); start the same command on every worker again to resume "
                           "from the chief's last backup")
