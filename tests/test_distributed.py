"""train.distribution: the same training under tf.distribute strategies.

Fast tests check the pieces (each replica's slice of a global batch, exact losses across replicas, config errors).
The slow ones train through the CLI in fresh processes: with dropout and augmentation off and op determinism on,
`none` (Keras fit), `mirrored` on 2 logical CPU devices and `multi_worker` with 2 worker processes on 127.0.0.1 must
log the same history and reach the same weights after more than 20 steps; and a worker killed mid-run must stop
the other with one line, the same commands then resuming the run to its last epoch.
"""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import shared

REPO = Path(__file__).resolve().parents[1]
# float32 training on the same batches: sums in another order (per replica, then across) differ by rounding only.
# Adam's step is about the learning rate whatever a gradient's size, so rounding in a near-zero gradient can move
# a weight by part of a step (seen: up to 0.11 x the rate, in 11 of captioning's 9,216 encoder weights; under 1e-5
# in keywords and the LM). Runs whose batches or losses differed would be many steps apart.
MAX_WEIGHT_DIFFERENCE = 0.25  # x train.learning_rate, any single weight
MEAN_WEIGHT_DIFFERENCE = 1e-6  # absolute, over all the weights
HISTORY_TOLERANCE = dict(rel=1e-4, abs=1e-6)
TIMEOUT = 600


# --------------------------------------------------------------------------------------------- pieces
def test_every_global_batch_is_cut_into_one_slice_per_replica_in_order():
    import tensorflow as tf

    from lstm_apps.distribute import replica_slice

    def slices(rows, replicas):
        batch = (tf.range(rows), {"ids": tf.range(rows) * 10})  # any nest: every tensor cut alike
        parts = [replica_slice(batch, replica, replicas) for replica in range(replicas)]
        assert all(list(p[1]["ids"].numpy()) == [10 * i for i in p[0].numpy()] for p in parts)
        return [list(map(int, p[0].numpy())) for p in parts]

    assert slices(5, 2) == [[0, 1, 2], [3, 4]]  # the first slice one row larger
    assert slices(4, 2) == [[0, 1], [2, 3]]
    assert slices(1, 2) == [[0], []]  # a last batch smaller than the replicas: an empty slice
    assert slices(7, 3) == [[0, 1, 2], [3, 4], [5, 6]]


def test_sums_and_counts_over_slices_give_the_global_batch_loss():
    import keras

    from lstm_apps.losses import MaskedCrossEntropy, sum_and_count

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 7, 11)).astype("float32")
    targets = rng.integers(1, 11, size=(5, 7))
    targets[0, 3:] = targets[3, 1:] = 0  # padding: the slices hold different numbers of real tokens
    for loss, y in ((MaskedCrossEntropy(mask_id=0, label_smoothing=0.1), targets),
                    (keras.losses.SparseCategoricalCrossentropy(from_logits=True), targets)):
        whole = float(loss(y, logits))  # what Keras fit logs for the batch on one device
        parts = [sum_and_count(loss, y[rows], logits[rows]) for rows in (slice(0, 3), slice(3, 5), slice(5, 5))]
        combined = sum(float(total) for total, _ in parts) / sum(float(count) for _, count in parts)
        assert combined == pytest.approx(whole, rel=1e-6)
        # a mean of the slices' means is not the batch's mean
        means = [float(loss(y[rows], logits[rows])) for rows in (slice(0, 3), slice(3, 5))]
        assert abs(np.mean(means) - whole) > 1e-4


# --------------------------------------------------------------------------------------------- the CLI
def cli(task, *args, env=None):
    return [sys.executable, "-m", "lstm_apps.cli", task, *args]


def environment(tf_config=None):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    env.pop("TF_CONFIG", None)
    if tf_config:
        env["TF_CONFIG"] = tf_config
    return env


def run(args, tf_config=None, timeout=TIMEOUT):
    return subprocess.run(args, cwd=REPO, env=environment(tf_config), capture_output=True, text=True,
                          timeout=timeout)


def check(result):
    assert result.returncode == 0, f"exit {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def start_workers(args, count=2):
    from lstm_apps.distribute import local_tf_configs

    return [subprocess.Popen(args, cwd=REPO, env=environment(tf_config), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
            for tf_config in local_tf_configs(count)]


def finish(workers, timeout=TIMEOUT):
    """(returncode, stdout, stderr) of every worker; kills them all when one does not end in time."""
    deadline, results = time.monotonic() + timeout, []
    try:
        for worker in workers:
            out, err = worker.communicate(timeout=max(1, deadline - time.monotonic()))
            results.append((worker.returncode, out, err))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
    return results


@pytest.mark.parametrize("setting, tf_config, expected", [
    ("train.distribution=ring", None, "train.distribution: unknown strategy 'ring' (known: none, mirrored, "
                                      "multi_worker)"),
    ("train.distribution=multi_worker", None, "train.distribution multi_worker: TF_CONFIG is not set"),
    ("train.distribution=multi_worker", '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", '
                                        '"index": 3}}', "is not one of the cluster's chief/worker entries"),
])
def test_a_bad_distribution_is_one_line_before_anything_is_written(setting, tf_config, expected, tmp_path):
    result = run(cli("language-model", "train", "--data-dir", str(shared("ptb")), "--run-dir", str(tmp_path / "run"),
                     "--set", setting), tf_config=tf_config, timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert expected in result.stderr and not (tmp_path / "run").exists()


def test_a_worker_whose_port_is_taken_says_so_in_one_line(tmp_path):
    import json
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = "127.0.0.1:%d" % taken.getsockname()[1]
        tf_config = json.dumps({"cluster": {"worker": [address, "127.0.0.1:1"]}, "task": {"type": "worker", "index": 0}})
        result = run(cli("language-model", "train", "--data-dir", str(shared("ptb")), "--run-dir", str(tmp_path / "run"),
                         "--set", "train.distribution=multi_worker"), tf_config=tf_config, timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"cannot serve at {address}" in result.stderr and not (tmp_path / "run").exists()


def test_a_run_resumes_under_another_strategy_and_from_before_strategies_existed(tmp_path):
    from lstm_apps import config as config_lib
    from lstm_apps.errors import ConfigError
    from lstm_apps.run_dir import CONFIG_FILE, RunDir
    from pipelines.language_model.task import TASK

    cfg = config_lib.build_config(TASK.presets_dir, "quick")
    older = {**cfg, "train": {k: v for k, v in cfg["train"].items() if k not in ("distribution", "devices")}}
    (tmp_path / CONFIG_FILE).write_text(config_lib.dump(older))
    RunDir(tmp_path).require_same_config(TASK, cfg)  # the new keys at their defaults: the same run
    # how a session runs may change (a multi-GPU run resumed on one device); what it computes may not
    RunDir(tmp_path).require_same_config(TASK, config_lib.merge(
        cfg, {"train": {"distribution": "mirrored", "devices": 2, "verbose": 0}}, "test"))
    with pytest.raises(ConfigError, match="train.batch_size"):
        RunDir(tmp_path).require_same_config(TASK, config_lib.merge(cfg, {"train": {"batch_size": 64}}, "test"))


def history(run_dir):
    with open(Path(run_dir) / "history.csv", newline="") as f:
        return [{key: float(value) for key, value in row.items() if key != "epoch_seconds"}
                for row in csv.DictReader(f)]


def learning_rate(run_dir):
    import yaml

    return float(yaml.safe_load((Path(run_dir) / "config.yaml").read_text())["train"]["learning_rate"])


def weights(run_dir):
    from lstm_apps.run_dir import load_model

    return load_model(run_dir).get_weights()


def command_of(task, data_dir, run_dir, settings):
    return cli(task, "train", "--data-dir", str(data_dir), "--run-dir", str(run_dir), "--set", *settings)


def train_under(strategy, task, data_dir, run_dir, settings):
    settings = [*settings, f"train.distribution={strategy}", "train.devices=2"]
    if strategy != "multi_worker":
        return check(run(command_of(task, data_dir, run_dir, settings)))
    results = finish(start_workers(command_of(task, data_dir, run_dir, settings)))
    for code, out, err in results:
        assert code == 0, f"a worker exited {code}:\n{out[-2000:]}\n{err[-3000:]}"
    chief_out, worker_out = results[0][1], results[1][1]
    assert "val_loss" in chief_out and worker_out == "", "only the chief prints"
    assert not (Path(run_dir) / "workers").exists(), "the workers' folders go when the run is finished"
    return chief_out


def fsdd_subset(tmp_path):
    """FSDD recordings 0-15 of every digit and speaker (links): 360 training clips, 28 batches of 13."""
    source = shared("fsdd") / "recordings"
    folder = tmp_path / "fsdd" / "recordings"
    folder.mkdir(parents=True)
    for path in source.glob("*.wav"):
        if int(path.stem.rsplit("_", 1)[1]) < 16:
            (folder / path.name).symlink_to(path)
    return folder.parent


# one epoch: Keras fit starts a second iterator of the training set between epochs (so its epoch 2 reads the
# dataset's third shuffle, the loop's its second); both reshuffle every epoch, only the order differs
DETERMINISTIC = ["train.epochs=1", "train.deterministic=true", "train.verbose=2"]
def generated_clips(tmp_path):
    from test_behaviour_unchanged import generated_clips

    return generated_clips(tmp_path)


EVERY_STRATEGY = ("mirrored", "multi_worker")
# task -> (data dir given tmp_path, settings: no dropout or augmentation, 20 or more short steps, the strategies
# compared with `none`). Translation and captioning run the same loop as the others; their multi_worker run checks
# that their inputs (token buckets, padded captions) are cut and combined exactly too.
QUICK_RUNS = {
    # 13 rows: every batch splits 7 + 6 between two replicas, the last one (9 rows of 360 clips) 5 + 4
    "keywords": (fsdd_subset, ["train.batch_size=13", "model.dropout=0", "augment.speed_change=0",
                               "augment.time_shift_ms=0", "augment.noise_probability=0", "augment.time_masks=0",
                               "augment.freq_masks=0"], EVERY_STRATEGY),
    # the stateful LM: each replica carries its rows' LSTM states; validation perplexity equal to one device's
    "language-model": (lambda tmp_path: shared("ptb"), ["data.train_tokens=25000", "model.dropout=0"],
                       EVERY_STRATEGY),
    "translation": (lambda tmp_path: shared("multi30k") / "raw", ["data.train_pairs=2000", "train.batch_tokens=1024",
                                                                  "model.dropout=0"], ("multi_worker",)),
    "captioning": (generated_clips, ["train.batch_size=4", "model.dropout=0"], ("multi_worker",)),
}


@pytest.mark.slow
@pytest.mark.parametrize("task", list(QUICK_RUNS))
def test_every_strategy_reaches_the_single_device_weights(task, tmp_path):
    """none, mirrored (2 logical CPUs) and multi_worker (2 processes): same history, same weights (> 20 steps)."""
    data_of, settings, strategies = QUICK_RUNS[task]
    data_dir = data_of(tmp_path)
    runs = {strategy: tmp_path / strategy for strategy in ("none", *strategies)}
    for strategy, run_dir in runs.items():
        train_under(strategy, task, data_dir, run_dir, [*DETERMINISTIC, *settings])
    reference = history(runs["none"])
    assert len(reference) == 1
    for strategy in strategies:
        logged = history(runs[strategy])
        assert [row.keys() for row in logged] == [row.keys() for row in reference]
        for row, expected in zip(logged, reference):
            assert row == pytest.approx(expected, **HISTORY_TOLERANCE), strategy
        differences = np.concatenate([np.abs(mine - theirs).ravel() for mine, theirs in
                                      zip(weights(runs[strategy]), weights(runs["none"]))])
        rate = learning_rate(runs["none"])
        assert differences.max() < MAX_WEIGHT_DIFFERENCE * rate, (strategy, differences.max())
        assert differences.mean() < MEAN_WEIGHT_DIFFERENCE, (strategy, differences.mean())


def mid_epoch_backup(run_dir):
    """The epoch of the chief's latest backup when it was taken inside an epoch, else None."""
    import json

    try:
        state = json.loads((Path(run_dir) / "backup" / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return state["epoch"] if state.get("batch") is not None else None


@pytest.mark.slow
def test_a_killed_worker_stops_the_other_and_the_same_commands_resume(tmp_path):
    """SIGKILL worker 1 in the second epoch: the chief stops at once with one line naming it; both commands
    started again resume from the chief's backup and finish the run's epochs."""
    run_dir = tmp_path / "run"
    command = command_of("language-model", shared("ptb"), run_dir,
                         ["data.train_tokens=25000", "train.epochs=2", "train.backup_every=5", "train.verbose=2",
                          "train.distribution=multi_worker"])
    workers = start_workers(command)
    try:
        deadline = time.monotonic() + TIMEOUT
        while mid_epoch_backup(run_dir) is None or mid_epoch_backup(run_dir) < 1:  # in the second epoch
            assert time.monotonic() < deadline and all(w.poll() is None for w in workers), finish(workers, 5)
            time.sleep(0.1)
        workers[1].send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        (code, out, err), _ = finish(workers, timeout=120)
        stopped_after = time.monotonic() - killed_at
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    lines = err.strip().splitlines()
    assert code == 2 and "lost contact with worker worker:1" in lines[-1] and "resume" in lines[-1], err[-3000:]
    assert stopped_after < 60, f"the chief took {stopped_after:.0f} s to stop"
    assert not (run_dir / "model.keras").exists()
    first_epoch = history(run_dir)[0]

    for code, out, err in finish(start_workers(command)):
        assert code == 0, f"a resumed worker exited {code}:\n{out[-2000:]}\n{err[-3000:]}"
    rows = history(run_dir)
    assert [row["epoch"] for row in rows] == [0, 1] and rows[0] == first_epoch  # epoch 0 was not trained again
    assert (run_dir / "model.keras").exists() and not (run_dir / "workers").exists()


@pytest.mark.slow
def test_multi_worker_workers_stream_their_own_shards_of_a_prepared_cache(tmp_path):
    """Keywords from a prepared cache under multi_worker with a bounded buffer: the chief prepares, each worker
    streams its own shards (half of every global batch, `distribute.PerWorker`), and the run learns: validation
    accuracy well above chance (10 digits) after 2 epochs."""
    cache = tmp_path / "cache"
    chief_out = train_under("multi_worker", "keywords", shared("fsdd"), tmp_path / "run",
                ["train.epochs=2", "train.verbose=2", "train.shuffle_buffer=256", "data.shard_size=200",
                 "train.batch_size=32", f"data.cache={cache}"])
    assert "worker 0 of 2: streams its own shards" in chief_out and "16 clips of each global batch of 32" in chief_out
    assert len(json.loads((cache / "train" / "manifest.json").read_text())["shards"]) >= 2
    rows = history(tmp_path / "run")
    assert len(rows) == 2 and rows[1]["loss"] < rows[0]["loss"] and rows[1]["val_accuracy"] > 0.3, rows
