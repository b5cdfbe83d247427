"""The runner's own guarantees: one writer per run dir (an OS lock that dies with its process)."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from lstm_apps.errors import RunDirError
from lstm_apps.run_dir import LOCK_FILE, RunDir

HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from lstm_apps.run_dir import RunDir
    run = RunDir(sys.argv[1]).lock()  # held while the object lives
    print("locked", flush=True)
    time.sleep(120)
""")


@pytest.fixture
def holder(tmp_path):
    """A process holding the run dir's lock, as a running `train` does."""
    run_dir = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "locked"
    yield run_dir, process
    process.kill()
    process.wait(timeout=30)


def test_a_second_writer_is_refused_naming_the_holder(holder):
    run_dir, process = holder
    with pytest.raises(RunDirError, match=rf"in use by pid {process.pid} on host \S+; wait for it"):
        RunDir(run_dir).lock()


def test_sigkill_never_leaves_a_stale_lock(holder):
    run_dir, process = holder
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert (run_dir / LOCK_FILE).exists(), "the lock file stays; the kernel dropped the lock itself"
    run = RunDir(run_dir).lock()
    assert f"pid {os.getpid()}" in (run_dir / LOCK_FILE).read_text()
    run.unlock()


def test_train_on_a_run_dir_in_use_exits_2_with_one_line(holder, fsdd_dir):
    """The same `train` started twice: the second exits 2 with one line naming the holder, and writes nothing."""
    run_dir, process = holder
    second = subprocess.run([sys.executable, "-m", "pipelines.keywords", "train", "--data-dir", str(fsdd_dir),
                             "--run-dir", str(run_dir), "--set", "train.epochs=1"],
                            capture_output=True, text=True, timeout=600)
    assert second.returncode == 2
    errors = [line for line in second.stderr.splitlines() if "lstm-apps" in line]
    assert len(errors) == 1 and f"in use by pid {process.pid}" in errors[0]
    assert sorted(p.name for p in run_dir.iterdir()) == [LOCK_FILE], "nothing written beside the lock"


def test_readers_run_beside_a_writer(holder, capsys):
    """evaluate / predict / export only read: the lock does not stop them (here: they fail on the empty run dir
    for its own reason, not for the lock)."""
    from lstm_apps.cli import main

    run_dir, _ = holder
    assert main(["keywords", "evaluate", "--run-dir", str(run_dir)]) == 2
    assert "not a run dir" in capsys.readouterr().err


def test_help_and_the_parser_import_no_tensorflow():
    """Every task's flags are declared TF-free in its own folder (pipelines/<task>/cli.py): building the whole
    parser and printing a task's --help import no TensorFlow, so they stay instant."""
    script = ("import sys, contextlib, io\n"
              "from lstm_apps.cli import build_parser\n"
              "parser = build_parser()\n"
              "with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):\n"
              "    parser.parse_args(['translation', 'predict', '--help'])\n"
              "assert '--beam' in out.getvalue() and '--attention' in out.getvalue(), out.getvalue()\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_renamed_key_still_resumes_and_reads_with_a_notice(tmp_path, capsys):
    """An unfinished run dir of the previous release (config.yaml with model.tie_weights) resumes under the same
    configuration spelled with the new key, and its config reads with a one-line notice."""
    import yaml

    from lstm_apps.config import build_config
    from lstm_apps.errors import ConfigError
    from pipelines.language_model.task import TASK

    cfg = build_config(TASK.presets_dir, "quick")
    old = yaml.safe_load(yaml.safe_dump(cfg))
    old["model"]["tie_weights"] = old["model"].pop("tie_embeddings")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
    run = RunDir(tmp_path)
    assert run.prepare(TASK, cfg, {}) is True, "resuming"
    assert run.config(TASK) == cfg
    assert capsys.readouterr().err.strip() == (f"notice: {tmp_path / 'config.yaml'}: 'model.tie_weights' is read as "
                                               f"'model.tie_embeddings' (renamed)")
    cfg["model"]["tie_embeddings"] = not cfg["model"]["tie_embeddings"]
    with pytest.raises(ConfigError, match="different value for 'model.tie_embeddings'"):
        run.prepare(TASK, cfg, {})
