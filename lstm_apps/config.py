"""Presets (plain YAML files) + an optional config file + ``--set key=value`` overrides.

Every key a run may use is in the task's ``quick.yaml`` preset; a file or ``--set`` may only change existing keys,
and only to a value of the same type, so a typo fails before any work starts.
"""
import copy
import os
from pathlib import Path

import yaml

from lstm_apps.errors import ConfigError

# Keys whose value is not of one type: what they accept, and the check (instead of "same type as the preset").
SPECIAL_VALUES = {
    "train.backup_every": ("'epoch' or a number of batches > 0",
                           lambda value: value == "epoch" or (type(value) is int and value > 0)),
    "train.verbose": ("auto, 0 (silent), 1 (progress bar) or 2 (one line per epoch)",
                      lambda value: value in ("auto", 0, 1, 2) and type(value) is not bool),
}


def load_yaml(path):
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
    return data


def _same_type(old, new):
    if isinstance(old, bool) or isinstance(new, bool):
        return isinstance(old, bool) and isinstance(new, bool)
    if isinstance(old, float) and isinstance(new, int):
        return True
    if old is None or new is None:
        return True
    return isinstance(new, type(old))


def merge(base, override, source, prefix=""):
    """Return ``base`` updated with ``override``; unknown keys or type changes raise ConfigError naming ``source``."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        dotted = f"{prefix}{key}"
        if key not in out:
            known = ", ".join(sorted(f"{prefix}{k}" for k in out))
            raise ConfigError(f"{source}: unknown key '{dotted}' (known keys: {known})")
        if isinstance(out[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: key '{dotted}' expects a mapping, got {value!r}")
            out[key] = merge(out[key], value, source, prefix=f"{dotted}.")
        else:
            if dotted in SPECIAL_VALUES:
                expected, accepts = SPECIAL_VALUES[dotted]
                if not accepts(value):
                    raise ConfigError(f"{source}: key '{dotted}' expects {expected}, got {value!r}")
            elif not _same_type(out[key], value):
                raise ConfigError(
                    f"{source}: key '{dotted}' expects a {type(out[key]).__name__}, got {value!r}")
            out[key] = float(value) if isinstance(out[key], float) and isinstance(value, int) else value
    return out


def parse_set(items):
    """Turn ``["train.epochs=3", "model.units=64"]`` into a nested dict; values are parsed as YAML scalars."""
    nested = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set train.epochs=3")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return nested


def build_config(presets_dir, preset="quick", config_file=None, overrides=None):
    """The configuration of a run: defaults (quick.yaml) <- preset <- config file <- --set overrides."""
    presets_dir = Path(presets_dir)
    defaults = load_yaml(presets_dir / "quick.yaml")
    preset_file = presets_dir / f"{preset}.yaml"
    if not preset_file.exists():
        names = sorted(p.stem for p in presets_dir.glob("*.yaml"))
        raise ConfigError(f"--preset {preset}: no such preset (available: {', '.join(names)})")
    cfg = merge(defaults, load_yaml(preset_file), str(preset_file))
    if config_file:
        cfg = merge(cfg, load_yaml(config_file), str(config_file))
    if overrides:
        cfg = merge(cfg, parse_set(overrides), "--set")
    return cfg


def require_positive(cfg, *keys):
    """Each dotted key (e.g. "train.epochs") must hold an integer >= 1; else a ConfigError naming it."""
    for key in keys:
        section, name = key.split(".")
        if cfg[section][name] < 1:
            raise ConfigError(f"{key}: expected a positive integer, got {cfg[section][name]}")


SPLIT_ALIASES = {"val": "valid", "validation": "valid"}


def canonical_split(split):
    """`train`, `valid`, `test` name the splits at the CLI and in metrics files of every task; `val` and
    `validation` are read as `valid`. Any other name passes through (a task may score other splits of its data)."""
    return SPLIT_ALIASES.get(split, split)


def positive_int(text):
    """argparse type: an integer >= 1 (e.g. --beam)."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def dump(cfg):
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=False)


def write_atomic(path, content):
    """Write a file (`content`: str, or bytes) so that a reader never sees half of it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    os.replace(tmp, path)
