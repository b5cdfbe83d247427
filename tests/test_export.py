"""lstm_apps.export on tiny real SavedModels: serving info inside the version, concurrent exports, stale staging."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from lstm_apps import export
from lstm_apps.errors import RunDirError

TESTS_DIR = Path(__file__).resolve().parent
REPO = TESTS_DIR.parent
SUBPROCESS_TIMEOUT = 240  # seconds; a subprocess imports TensorFlow (~10 s on a busy machine)


def export_tiny(export_dir, serving_info=None, trace_sleep=0.0):
    """Export Dense(2) on float32[None, 3] as serving_default (x -> y); `trace_sleep` seconds pass while the
    endpoint is traced (inside write_saved_model, no patching)."""
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])

    def serve(x):
        time.sleep(trace_sleep)
        return {"y": model(x)}

    endpoints = {"serving_default": (serve, [tf.TensorSpec([None, 3], tf.float32, name="x")])}
    warmup = {"serving_default": {"x": np.zeros((1, 3), np.float32)}}
    return export.write_saved_model(export_dir, [model], endpoints, warmup, model_name="tiny",
                                    serving_info=serving_info)


def python(log, code, *args):
    """A subprocess running `code` with this test module importable as `test_export`; its output goes to files
    `log`.out and `log`.err (no pipe to fill up while the test polls)."""
    prelude = f"import sys; sys.path.insert(0, {str(TESTS_DIR)!r}); sys.path.insert(0, {str(REPO)!r})\n"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    with open(f"{log}.out", "w") as stdout, open(f"{log}.err", "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", prelude + code, *map(str, args)], env=env,
                                stdout=stdout, stderr=stderr, text=True)
    proc.log = log
    return proc


def output(proc):
    return Path(f"{proc.log}.out").read_text(), Path(f"{proc.log}.err").read_text()[-3000:]


def stop(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=60)


def wait_for(predicate, timeout, what, procs=()):
    deadline = time.monotonic() + timeout
    while not predicate():
        for proc in procs:
            if proc.poll() is not None:
                raise AssertionError(f"subprocess ended ({proc.returncode}) before {what}: {output(proc)[1]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def versions(export_dir):
    return sorted(int(p.name) for p in Path(export_dir).iterdir() if p.name.isdigit())


def staging_dirs(export_dir):
    return sorted(Path(export_dir).glob(export.STAGING_PREFIX + "*"))


def dead_pid():
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          timeout=60, check=True)
    return int(proc.stdout)


def staging_name(host, pid):
    return f"{export.STAGING_PREFIX}{host}-{pid}-0123abcd"


def test_serving_info_is_inside_the_version_and_reads_back(tmp_path):
    info = {"task": "tiny", "labels": ["yes", "no", "é"], "sample_rate": 16000}
    path = export_tiny(tmp_path, serving_info=info)
    assert path == tmp_path / "1"
    assert (path / export.SERVING_INFO_FILE).is_file()
    assert export.read_serving_info(path) == info
    assert export.read_warmup_requests(path)["serving_default"]["x"].shape == (1, 3)
    outputs = tf.saved_model.load(str(path)).signatures["serving_default"](x=tf.ones([2, 3]))
    assert outputs["y"].shape == (2, 2)
    assert staging_dirs(tmp_path) == []
    assert export.read_serving_info(export_tiny(tmp_path, serving_info={"n": 2})) == {"n": 2}
    assert versions(tmp_path) == [1, 2]


def test_read_serving_info_without_the_file_is_one_line_naming_the_folder(tmp_path):
    path = export_tiny(tmp_path)  # serving_info not given: no file
    assert not (path / export.SERVING_INFO_FILE).exists()
    with pytest.raises(RunDirError) as error:
        export.read_serving_info(path)
    message = str(error.value)
    assert "\n" not in message and str(path) in message and "lstm_apps.yaml" in message
    (path / export.SERVING_INFO_FILE).write_text("- a list\n", encoding="utf-8")
    with pytest.raises(RunDirError, match="mapping"):
        export.read_serving_info(path)


def test_serving_info_must_be_a_dict(tmp_path):
    with pytest.raises(TypeError):
        export_tiny(tmp_path, serving_info=["not", "a", "dict"])
    assert versions(tmp_path) == [] and staging_dirs(tmp_path) == []


def test_claim_version_retries_past_taken_versions(tmp_path):
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "saved_model.pb").write_bytes(b"taken")
    (tmp_path / "2").write_text("not a folder")  # next_version ignores it; rename onto it fails (ENOTDIR)
    staging = tmp_path / ".staging-a"
    staging.mkdir()
    (staging / "saved_model.pb").write_bytes(b"mine")
    # As if another export claimed 1 between this one's look (first=1) and its rename:
    assert export.claim_version(staging, tmp_path, first=1) == tmp_path / "3"
    assert (tmp_path / "3" / "saved_model.pb").read_bytes() == b"mine"
    assert (tmp_path / "1" / "saved_model.pb").read_bytes() == b"taken" and not staging.exists()
    staging.mkdir()
    (staging / "saved_model.pb").write_bytes(b"next")
    assert export.claim_version(staging, tmp_path) == tmp_path / "4"
    with pytest.raises(FileNotFoundError):  # an error other than "taken" is raised, not retried
        export.claim_version(tmp_path / ".staging-gone", tmp_path)


def test_remove_stale_staging_removes_only_dead_writers_on_this_host(tmp_path):
    host = export._host()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        dead = tmp_path / staging_name(host, dead_pid())
        live_self = tmp_path / staging_name(host, os.getpid())
        live_other = tmp_path / staging_name(host, sleeper.pid)
        other_host = tmp_path / staging_name(host + "-elsewhere", dead_pid())
        legacy = tmp_path / ".staging-1-999999999"  # not named by this module: left alone
        for folder in (dead, live_self, live_other, other_host, legacy):
            folder.mkdir()
            (folder / "saved_model.pb").write_bytes(b"x")
        assert export.remove_stale_staging(tmp_path) == [dead]
        assert staging_dirs(tmp_path) == sorted([live_self, live_other, other_host, legacy])
    finally:
        sleeper.kill()
        sleeper.wait(timeout=60)
    assert export.remove_stale_staging(tmp_path) == [live_other]  # its writer is dead now


def test_killed_export_leaves_no_version_and_the_next_export_cleans_up(tmp_path):
    export_dir = tmp_path / "export"
    proc = python(tmp_path / "export", "import test_export\n"
                  "test_export.export_tiny(sys.argv[1], {'n': 0}, trace_sleep=60)", export_dir)
    try:
        wait_for(lambda: export_dir.is_dir() and staging_dirs(export_dir), SUBPROCESS_TIMEOUT,
                 "the staging folder", [proc])
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL  # reaped: no zombie keeps its pid alive
    finally:
        stop(proc)
    [stale] = staging_dirs(export_dir)  # it existed when the signal landed, and nothing removed it
    assert f"-{proc.pid}-" in stale.name
    assert versions(export_dir) == []
    path = export_tiny(export_dir, serving_info={"n": 1})
    assert path == export_dir / "1" and export.read_serving_info(path) == {"n": 1}
    assert staging_dirs(export_dir) == [] and versions(export_dir) == [1]


CONCURRENT = """
import os, time
from pathlib import Path
import test_export
export_dir, ready, go, writer = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
ready.write_text("")
deadline = time.monotonic() + 200
while not go.exists():
    assert time.monotonic() < deadline, "no go"
    time.sleep(0.001)
for n in range(3):
    print(test_export.export_tiny(export_dir, {"writer": writer, "n": n}).name, flush=True)
"""


def test_concurrent_exports_get_distinct_versions(tmp_path):
    export_dir, go = tmp_path / "export", tmp_path / "go"
    readies = [tmp_path / f"ready-{writer}" for writer in range(2)]
    procs = [python(tmp_path / f"writer-{writer}", CONCURRENT, export_dir, readies[writer], go, writer)
             for writer in range(2)]
    try:
        wait_for(lambda: all(r.exists() for r in readies), SUBPROCESS_TIMEOUT, "both subprocesses ready", procs)
        go.write_text("")  # both start exporting together, three exports each, into one (new) folder
        for proc in procs:
            proc.wait(timeout=SUBPROCESS_TIMEOUT)
    finally:
        for proc in procs:
            stop(proc)
    for proc in procs:
        assert proc.returncode == 0, output(proc)[1]
    claimed = [int(line) for proc in procs for line in output(proc)[0].split()]
    assert sorted(claimed) == [1, 2, 3, 4, 5, 6]
    assert versions(export_dir) == [1, 2, 3, 4, 5, 6] and staging_dirs(export_dir) == []
    infos = {(info["writer"], info["n"]) for info in map(export.read_serving_info,
                                                          (export_dir / str(v) for v in range(1, 7)))}
    assert infos == {(writer, n) for writer in range(2) for n in range(3)}
