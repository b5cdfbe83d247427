"""A run dir: the files of one training run, and the one process allowed to write them.

config.yaml      the configuration as the user gave it (preset <- file <- --set), written once, never rewritten
metadata.json    the facts found when the data were first read (resolved data dir, sample rate, vocabulary sizes,
                 library versions), written once
backup/          the resumable state while the run is unfinished
best.weights.h5, history.csv, logs/, learning_curve.png, and the task's own files (labels, vocabulary, tokenizers)
model.keras      written last and atomically: its presence means the run is finished
"""
import fcntl
import json
import os
import socket
import sys
from pathlib import Path

import yaml

from lstm_apps import config as config_lib
from lstm_apps.errors import ConfigError, RunDirError

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.yaml"
METADATA_FILE = "metadata.json"
HISTORY_FILE = "history.csv"
BEST_WEIGHTS_FILE = "best.weights.h5"
BACKUP_DIR = "backup"
LOCK_FILE = ".lock"
# keys that say how a session runs, not what it computes: a run may resume with other values (on fewer GPUs, as
# one process after a multi-worker session, quieter, from a prepared cache or from the files)
SESSION_KEYS = ("train.distribution", "train.devices", "train.verbose", "data.cache")


class RunDir:
    """One run's folder. `lock()` makes this process its only writer; everything else only reads."""

    def __init__(self, path, read_only=False):
        self.path = Path(path)
        self.read_only = read_only  # a non-chief worker's view: reading the chief's files, never writing them
        self._lock_file = None

    def __truediv__(self, name):
        return self.path / name

    def __str__(self):
        return str(self.path)

    @property
    def finished(self):
        return (self.path / MODEL_FILE).exists()

    # ----------------------------------------------------------------------------------------- writing
    def lock(self):
        """Take the run dir's OS lock (flock: the kernel drops it when the process dies, even by SIGKILL), or exit
        with one line naming the process that holds it. Held until the process ends or `unlock()`."""
        self.path.mkdir(parents=True, exist_ok=True)
        handle = open(self.path / LOCK_FILE, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunDirError(f"{self.path}: in use by {holder}; wait for it to finish, or choose another --run-dir")
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on host {socket.gethostname()}\n")
        handle.flush()
        self._lock_file = handle
        return self

    def unlock(self):
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def __enter__(self):
        return self.lock()

    def __exit__(self, *exc):
        self.unlock()

    def prepare(self, task, cfg, facts):
        """Create or reopen the run: a finished run is never overwritten; an unfinished one resumes only with the
        same configuration. Writes config.yaml and metadata.json the first time. Returns True when resuming."""
        if self.finished:
            raise RunDirError(f"{self.path}: holds a finished run ({MODEL_FILE}); choose a new --run-dir")
        if (self.path / CONFIG_FILE).exists():
            self.require_same_config(task, cfg)
            return True
        self.path.mkdir(parents=True, exist_ok=True)
        self.write_metadata(facts)
        config_lib.write_atomic(self.path / CONFIG_FILE, config_lib.dump(cfg))
        return False

    def require_same_config(self, task, cfg):
        """Work already here (a backup, a finished model) may be reused only under the configuration it used (keys
        added since that run was started count at their defaults; SESSION_KEYS may differ)."""
        saved = self._with_defaults(task, self._saved_config(task))
        differing = _first_difference(_without(saved, SESSION_KEYS), _without(cfg, SESSION_KEYS))
        if differing:
            raise ConfigError(f"{self.path / CONFIG_FILE}: this run used a different value for '{differing}'; "
                              f"rerun with the same options to resume, or choose a new --run-dir")

    def write_metadata(self, facts):
        self._check_writable(METADATA_FILE)
        import keras
        import tensorflow as tf

        import lstm_apps

        versions = {"lstm_apps": lstm_apps.__version__, "tensorflow": tf.__version__, "keras": keras.__version__}
        save_json_atomic(self.path / METADATA_FILE, {**facts, "versions": versions})

    def save_json(self, name, obj):
        self._check_writable(name)
        save_json_atomic(self.path / name, obj)

    def save_bytes(self, name, content):
        self._check_writable(name)
        config_lib.write_atomic(self.path / name, content)

    def save_model(self, model):
        self._check_writable(MODEL_FILE)
        save_model(model, self.path / MODEL_FILE)

    def _check_writable(self, name):
        if self.read_only:
            raise RuntimeError(f"{self.path / name}: only the chief writes the run dir (this is a read-only view)")

    # ----------------------------------------------------------------------------------------- reading
    def config(self, task):
        """The run's config.yaml over the task's defaults (a run from an older version gains new keys); keys the
        task has renamed since are read under their new names, with a one-line notice."""
        path = self.path / CONFIG_FILE
        if not path.exists():
            raise RunDirError(f"{self.path}: not a run dir (no {CONFIG_FILE}); expected the --run-dir of train")
        return self._with_defaults(task, self._saved_config(task, notice=True))

    def _with_defaults(self, task, saved):
        defaults = config_lib.load_yaml(Path(task.presets_dir) / "quick.yaml")
        return config_lib.merge(defaults, saved, str(self.path / CONFIG_FILE))

    def _saved_config(self, task, notice=False):
        """config.yaml as written, with the keys the task renamed since read under their new names."""
        path = self.path / CONFIG_FILE
        saved = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for old, new in task.renamed_keys.items():
            if _pop_dotted(saved, old, into=new) and notice:
                print(f"notice: {path}: '{old}' is read as '{new}' (renamed)", file=sys.stderr)
        return saved

    def metadata(self):
        """The facts recorded at the first train; {} for a run dir of a release that had no metadata file."""
        path = self.path / METADATA_FILE
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

    def load_json(self, name):
        return load_json(self.path / name)

    def load_model(self):
        return load_model(self.path)


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


def _without(cfg, dotted_keys):
    cfg = {section: dict(values) if isinstance(values, dict) else values for section, values in cfg.items()}
    for key in dotted_keys:
        section, name = key.split(".")
        if isinstance(cfg.get(section), dict):
            cfg[section].pop(name, None)
    return cfg


def _pop_dotted(cfg, old, into):
    """Move cfg[old] (a dotted key) to cfg[into]; True when it was there."""
    section, name = old.split(".")
    if name not in (cfg.get(section) or {}):
        return False
    new_section, new_name = into.split(".")
    cfg.setdefault(new_section, {})[new_name] = cfg[section].pop(name)
    return True


def save_model(model, path):
    """Save a .keras file atomically (written beside, then renamed)."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}")
    model.save(str(tmp))
    os.replace(tmp, path)


def load_model(run_dir):
    import keras

    import lstm_apps.layers  # noqa: F401  register the project's layers, losses and metrics with Keras
    import lstm_apps.losses  # noqa: F401
    import lstm_apps.metrics  # noqa: F401

    path = Path(run_dir) / MODEL_FILE
    if not path.exists():
        raise RunDirError(f"{run_dir}: no finished model ({MODEL_FILE}); run train first (or let it finish)")
    return keras.saving.load_model(str(path))


def save_json_atomic(path, obj):
    config_lib.write_atomic(path, json.dumps(obj, indent=2) + "\n")


def load_json(path):
    path = Path(path)
    if not path.exists():
        raise RunDirError(f"{path.parent}: missing {path.name}; expected a run dir written by train")
    return json.loads(path.read_text(encoding="utf-8"))
