"""The verbs, once for every task: train (and ensembles), evaluate, predict, export.

A task supplies parts (`lstm_apps.tasks.Task`); this module calls them in order, so bad data or config is rejected
before anything is written to the run dir, and builds, compiles and fits every model in one place.
"""
import contextlib
import copy
import json
import os
import shutil
import sys
import time
from pathlib import Path

from lstm_apps import config as config_lib
from lstm_apps.errors import ConfigError, DataError, RunDirError
from lstm_apps.run_dir import RunDir

MEMBERS_DIR = "members"
TRAINING_SPLITS = ("train", "valid")


# --------------------------------------------------------------------------------------------- train
def train(task, run_dir, data_dir=None, preset="quick", config_file=None, overrides=()):
    """Train a run (or resume it). Under train.distribution multi_worker every worker runs this with the same
    arguments: the chief locks and writes the run dir, the others read what it wrote (`RunDir(read_only=True)`)."""
    from lstm_apps import distribute, training

    cfg = build_train_config(task, data_dir, preset, config_file, overrides)
    members = member_configs(cfg)
    for index, member_cfg in enumerate(members or [cfg]):
        try:
            task.check_config(member_cfg)
            training.optimizer_class(member_cfg["train"]["optimizer"])
            distribute.check(member_cfg["train"])
        except ConfigError as error:
            raise ConfigError(f"model.members[{index}]: {error}" if members else str(error)) from None
    if members and cfg["train"]["distribution"] != "none":
        raise ConfigError("train.distribution: ensembles train one member at a time on one device; set it to none")
    distribution = distribute.distribution(cfg["train"])  # before any TF op: devices and cluster are set up first
    data_dir = resolve_data_dir(task, cfg)
    data = task.read_data(cfg, data_dir, TRAINING_SPLITS)  # validates every file before the run dir is touched
    if distribution is not None and not distribution.is_chief:  # only the chief prints and writes the run dir
        with distribute.peers_watched(distribution), open(os.devnull, "w") as quiet, \
                contextlib.redirect_stdout(quiet):
            distribute.barrier(distribution)  # the chief has prepared the data, written config, metadata, assets
            prepared(task, cfg, data, TRAINING_SPLITS)  # complete by now: read, never written
            train_model(task, cfg, data, RunDir(run_dir, read_only=True), distribution)
        return
    prepared(task, cfg, data, TRAINING_SPLITS)  # data.cache: a file that cannot be decoded stops us here too
    run = RunDir(run_dir).lock()
    resuming = run.prepare(task, cfg, facts(data_dir, data))
    print(("resuming" if resuming else "starting") + f" {task.name} run in {run_dir} with config:")
    print(config_lib.dump(cfg), flush=True)
    if not members:
        with distribute.peers_watched(distribution):
            train_model(task, cfg, data, run, distribution)
        return
    models = [train_member(task, member_cfg, data, RunDir(run / MEMBERS_DIR / str(index)), data_dir)
              for index, member_cfg in enumerate(members)]
    task.prepare_run(cfg, data, run)
    run.save_model(task.join_members(models, data))


def train_model(task, cfg, data, run, distribution=None):
    """Build, compile and fit one model; training.fit leaves RUN_DIR/model.keras when it finishes. Under a
    strategy the model is built in its scope, and the chief derives the run's assets before the others read them."""
    from lstm_apps import distribute, training

    training.set_seed(cfg["train"]["seed"], cfg["train"]["deterministic"])
    assets = task.prepare_run(cfg, data, run)
    if distribution is not None and distribution.is_chief:
        distribute.barrier(distribution)  # the other workers wait here in `train` until the assets are written
    with distribute.scope(distribution):
        model = compiled_model(task, cfg, data, assets, clip=distribution is None)
    if distribution is None or distribution.is_chief:
        model.summary(print_fn=lambda line, **_: print(line))
    training.fit(model, *task.datasets(cfg, data, assets), run.path, cfg["train"], extra_callbacks=task.callbacks(cfg),
                 distribution=distribution, make_metrics=lambda: task.metrics(cfg))
    if distribution is not None:
        distribute.barrier(distribution)  # no worker leaves while another still needs it for a collective
        if distribution.is_chief:
            shutil.rmtree(run / distribute.WORKERS_DIR, ignore_errors=True)


def compiled_model(task, cfg, data, assets, clip=True):
    """The task's model compiled with its loss, metrics and learning rate (also what the benchmarks time).
    `clip=False`: the optimizer leaves train.clipnorm to the distributed training loop."""
    from lstm_apps import training

    model = task.build_model(cfg, data, assets)
    train_cfg = cfg["train"]
    model.compile(optimizer=training.make_optimizer(train_cfg["optimizer"], task.learning_rate(cfg, data),
                                                    train_cfg["clipnorm"] if clip else 0),
                  loss=task.loss(cfg), metrics=task.metrics(cfg))
    return model


def train_member(task, cfg, data, run, data_dir):
    """One ensemble member, an ordinary run dir (resumable, evaluable alone, locked like any run). A finished
    member is reused, so an interrupted ensemble retrains nothing it has finished; its config must match."""
    run.lock()
    if run.finished:
        run.require_same_config(task, cfg)
    else:
        print(f"training ensemble member {run}", flush=True)
        run.prepare(task, cfg, facts(data_dir, data))
        train_model(task, cfg, data, run)
    run.unlock()
    return run.load_model()


def member_configs(cfg):
    """The configs of an ensemble's members: model.members (a key only tasks with ensembles have) holds one list
    of key=value settings per member, applied over this config as --set would. [] for a single model. Members
    share the data, so data.* is fixed."""
    settings_per_member = cfg.get("model", {}).get("members") or []
    single = copy.deepcopy(cfg)
    if settings_per_member:
        single["model"]["members"] = []
    members = []
    for index, settings in enumerate(settings_per_member):
        where = f"model.members[{index}]"
        if not isinstance(settings, list) or not all(isinstance(s, str) and "=" in s for s in settings):
            raise ConfigError(f"{where}: expected a list of key=value settings, e.g. [model.name=crnn], "
                              f"got {settings!r}")
        overrides = config_lib.parse_set(settings)
        if "data" in overrides or "members" in overrides.get("model", {}):
            raise ConfigError(f"{where}: members share the data and do not nest; data.* and model.members "
                              "cannot be set per member")
        members.append(config_lib.merge(single, overrides, where))
    return members


def prepare(task, data_dir=None, preset="quick", config_file=None, overrides=()):
    """Encode the dataset's splits once into data.cache (what `train` and `evaluate` then stream); a cache made of
    the same files and settings is kept, one made of others is rebuilt, an interrupted one is carried on."""
    cfg = build_train_config(task, data_dir, preset, config_file, overrides)
    task.check_config(cfg)
    if not cfg["data"].get("cache"):
        raise ConfigError("prepare: expected --data-cache DIR (or data.cache), the folder for the prepared shards")
    data = task.read_data(cfg, resolve_data_dir(task, cfg), task.prepared_splits)
    return prepared(task, cfg, data, task.prepared_splits)


def prepared(task, cfg, data, splits):
    """With data.cache set, `splits` encoded into shards there (Task.prepare_data) and `data` pointed at them;
    what was found or made is printed. {} without a cache."""
    cache = cfg["data"].get("cache")
    if not cache:
        return {}
    started, shown = time.monotonic(), {}

    def progress(split, done, total):
        tenth = 10 * done // total
        if tenth > shown.get(split, 0):
            shown[split] = tenth
            print(f"prepare {split}: {done}/{total} ({time.monotonic() - started:.0f} s)", flush=True)

    manifests = task.prepare_data(cfg, data, Path(cache), splits, progress)
    for split, manifest in manifests.items():
        for source, reason in manifest.skipped:
            print(f"skipped {reason}", file=sys.stderr)
        print(f"prepared {split}: {manifest.examples} examples in {len(manifest.shards)} shards in {cache}/{split}"
              + (f", {len(manifest.skipped)} files skipped (data.skip_bad_files)" if manifest.skipped else ""),
              flush=True)
    return manifests


def build_train_config(task, data_dir, preset, config_file=None, overrides=()):
    """The config of a new run, as the user gave it (`--data-dir` is data.dir). Where the task has a variant of
    `preset` tuned for the dataset in use (Task.dataset_presets), the variant's file is the preset."""
    if data_dir is not None and not Path(data_dir).is_dir():
        raise DataError(f"--data-dir {data_dir}: no such folder")

    def build(preset_name):
        cfg = config_lib.build_config(task.presets_dir, preset_name, config_file, overrides)
        if data_dir is not None:
            cfg["data"]["dir"] = str(data_dir)
        return cfg

    cfg = build(preset)
    dataset = task.dataset(cfg, cfg["data"]["dir"])
    variant = task.dataset_presets.get((preset, dataset))
    if variant is None:
        return cfg
    print(f"--preset {preset}: on {dataset} data that is preset '{variant}' ({variant}.yaml)", flush=True)
    return build(variant)


def resolve_data_dir(task, cfg, data_dir=None, run=None):
    """The data folder: `data_dir` (evaluate --data-dir), else the one the run recorded, else data.dir, else the
    download of data.dataset. Must be a folder."""
    recorded = run.metadata().get("data_dir") if run is not None else None
    chosen = data_dir or recorded or cfg["data"]["dir"]
    path = Path(chosen) if chosen else Path(task.download(cfg))
    if not path.is_dir():
        source = "--data-dir" if data_dir else "data.dir"
        raise DataError(f"{source} {path}: no such folder")
    return path.resolve()


def facts(data_dir, data):
    return {"data_dir": str(data_dir), **getattr(data, "facts", {})}


# --------------------------------------------------------------------------------------------- the other verbs
def evaluate(task, run_dir, split, data_dir=None):
    """Score a finished run on one split (of its own data, or of another copy given as `data_dir`); writes
    RUN_DIR/metrics-SPLIT.json."""
    run = RunDir(run_dir)
    cfg = run.config(task)
    split = config_lib.canonical_split(split)
    module = task.inference(cfg, run, {})
    data = task.read_data(cfg, resolve_data_dir(task, cfg, data_dir, run), (split,))
    prepared(task, cfg, data, (split,))
    metrics = task.score(cfg, module, data, split, run)
    config_lib.write_atomic(run / f"metrics-{split}.json", json.dumps(metrics, indent=2) + "\n")
    return metrics


def predict(task, inputs, run_dir=None, model_dir=None, options=None):
    """One dict per input, from a run dir's inference module or from an export: the same signatures either way."""
    options = options or {}
    if run_dir is not None:
        module = task.inference(RunDir(run_dir).config(task), RunDir(run_dir), options)
        return task.predict(signature_functions(module), module.serving_info(), inputs, options, module)
    import importlib

    from lstm_apps import export as export_lib
    from lstm_apps.tasks import cli_options

    fixed = [flag for flag in cli_options(task.name).RUN_DIR_ONLY if options.get(flag) is not None
             and options.get(flag) is not False]
    if fixed:
        raise ConfigError(f"--{fixed[0].replace('_', '-')}: fixed when the model was exported; use --run-dir")
    saved_model_dir = resolve_saved_model(model_dir)
    for name in task.saved_model_imports:
        importlib.import_module(name)
    import tensorflow as tf

    signatures = tf.saved_model.load(str(saved_model_dir)).signatures
    return task.predict(signatures, export_lib.read_serving_info(saved_model_dir), inputs, options, None)


def signature_functions(module):
    """The module's endpoints as the loaded SavedModel's signatures are called: keyword arguments in, dict out."""
    import tensorflow as tf

    def signature(function, specs):
        graph = tf.function(function, input_signature=specs)
        return lambda **inputs: graph(*(inputs[spec.name] for spec in specs))

    return {name: signature(function, specs) for name, (function, specs) in module.endpoints().items()}


def export(task, run_dir, export_dir, portable_lstm=True):
    """EXPORT_DIR/<version>/ for TF Serving; with `portable_lstm` (the CLI's only mode) every LSTM carries its generic
    and its cuDNN kernel, so the export serves on CPU and GPU servers whatever machine writes it."""
    from lstm_apps import export as export_lib

    run = RunDir(run_dir)
    module = task.inference(run.config(task), run, {})
    return export_lib.write_saved_model(export_dir, module.trackables(), module.endpoints(), module.warmup_inputs(),
                                        model_name=task.name.replace("-", "_"), serving_info=module.serving_info(),
                                        portable_lstm=portable_lstm)


def resolve_saved_model(model_dir):
    """An export dir (its highest numeric version) or one version folder -> the folder with saved_model.pb."""
    path = Path(model_dir)
    if (path / "saved_model.pb").exists():
        return path
    versions = sorted((int(p.name) for p in path.glob("*") if p.is_dir() and p.name.isdigit()), reverse=True)
    if not versions:
        raise RunDirError(f"--model {model_dir}: no saved_model.pb and no numbered version folder inside")
    return path / str(versions[0])
