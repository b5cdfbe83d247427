"""What every task's verbs share: config resolution, run-dir handling, config logging, seeding.

The task answers the task-specific questions (see `lstm_apps.tasks.Task`); this module calls them in order, so
bad data or config is rejected before anything is written to the run dir.
"""
from pathlib import Path

import yaml

from lstm_apps import config as config_lib
from lstm_apps import training
from lstm_apps.errors import DataError, RunDirError


def train(task, run_dir, data_dir=None, preset="quick", config_file=None, overrides=()):
    cfg = build_train_config(task, data_dir, preset, config_file, overrides)
    data = task.load_data(cfg)  # validates every file before the run dir is touched
    resuming = training.prepare_run_dir(run_dir, cfg)
    print(("resuming" if resuming else "starting") + f" {task.name} run in {run_dir} with config:")
    print(config_lib.dump(cfg), flush=True)
    training.set_seed(cfg["train"]["seed"], cfg["train"]["deterministic"])
    task.train(cfg, data, Path(run_dir))


def build_train_config(task, data_dir, preset, config_file=None, overrides=()):
    """The config of a new run. Where the task has a variant of `preset` tuned for the dataset in use
    (Task.dataset_presets), the variant's file is the preset."""
    if data_dir is not None and not Path(data_dir).is_dir():
        raise DataError(f"--data-dir {data_dir}: no such folder")

    def build(preset_name):
        cfg = config_lib.build_config(task.presets_dir, preset_name, config_file, overrides)
        if data_dir is not None:
            cfg["data"]["dir"] = str(Path(data_dir).resolve())
        return cfg

    cfg = build(preset)
    dataset = task.dataset(cfg)
    variant = task.dataset_presets.get((preset, dataset))
    if variant is None:
        return cfg
    print(f"--preset {preset}: on {dataset} data that is preset '{variant}' ({variant}.yaml)", flush=True)
    return build(variant)


def load_run_config(task, run_dir):
    """The run's config.yaml over the task's defaults (so a run from an older version gains new keys)."""
    path = Path(run_dir) / training.CONFIG_FILE
    if not path.exists():
        raise RunDirError(f"{run_dir}: not a run dir (no {training.CONFIG_FILE}); expected the --run-dir of train")
    defaults = config_lib.load_yaml(Path(task.presets_dir) / "quick.yaml")
    return config_lib.merge(defaults, yaml.safe_load(path.read_text(encoding="utf-8")), str(path))


def evaluate(task, run_dir, split):
    cfg = load_run_config(task, run_dir)
    metrics = task.evaluate(cfg, Path(run_dir), split)
    config_lib.write_atomic(Path(run_dir) / f"metrics-{split}.json", _json(metrics))
    return metrics


def predict(task, inputs, run_dir=None, model_dir=None, options=None):
    if run_dir is not None:
        return task.predict(load_run_config(task, run_dir), inputs, run_dir=Path(run_dir), options=options or {})
    return task.predict_saved_model(resolve_saved_model(model_dir), inputs, options=options or {})


def export(task, run_dir, export_dir):
    cfg = load_run_config(task, run_dir)
    return task.export(cfg, Path(run_dir), Path(export_dir))


def resolve_saved_model(model_dir):
    """An export dir (its highest numeric version) or one version folder -> the folder with saved_model.pb."""
    path = Path(model_dir)
    if (path / "saved_model.pb").exists():
        return path
    versions = sorted((int(p.name) for p in path.glob("*") if p.is_dir() and p.name.isdigit()), reverse=True)
    if not versions:
        raise RunDirError(f"--model {model_dir}: no saved_model.pb and no numbered version folder inside")
    return path / str(versions[0])


def _json(obj):
    import json
    return json.dumps(obj, indent=2) + "\n"
