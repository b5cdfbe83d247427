"""The task registry and the parts a task supplies. A task is one folder in ``pipelines/`` plus one line here.

The folder holds ``cli.py`` (its extra command-line flags, TensorFlow-free so ``--help`` is instant) and
``task.py`` (a ``TASK`` object: the parts below). ``lstm_apps.runner`` owns the verbs and calls the parts.
"""
import importlib

from lstm_apps.errors import ConfigError

# task name -> its package in pipelines/ (imported only when the task is used)
TASK_PACKAGES = {
    "keywords": "pipelines.keywords",
    "language-model": "pipelines.language_model",
    "translation": "pipelines.translation",
    "captioning": "pipelines.captioning",
}


def _known(name):
    if name not in TASK_PACKAGES:
        raise ConfigError(f"unknown task '{name}' (available: {', '.join(TASK_PACKAGES)})")
    return TASK_PACKAGES[name]


def get_task(name):
    return importlib.import_module(f"{_known(name)}.task").TASK


def cli_options(name):
    """The task's `cli` module (TF-free): OPTIONS {verb: {flag: argparse kwargs}} (extra flags of the common
    verbs), VERBS {verb: (help, {flag: argparse kwargs})} (the task's own verbs, run by the Task method of that
    name), RUN_DIR_ONLY (predict options that `predict --model` refuses: they are fixed in an export)."""
    return importlib.import_module(f"{_known(name)}.cli")


class Task:
    """The parts of a task; `lstm_apps.runner` builds, compiles, fits, evaluates, predicts and exports with them.

    Attributes:
        name: the CLI name.
        presets_dir: folder with quick.yaml (every key, the defaults) and full.yaml.
        dataset_presets: {(preset, dataset): preset file stem}: a preset tuned for one dataset stands in for the
            named one when the data are that dataset.
        renamed_keys: {old dotted key: new dotted key}: read under the new name from older run dirs.
        saved_model_imports: modules to import before loading the task's SavedModel (ops they register).
        prepared_splits: the splits `prepare` reads and encodes (the ones the task's pipelines stream).

    Data:
        dataset(cfg, data_dir) -> the dataset name `dataset_presets` spells, or None.
        check_config(cfg): every check that needs no data (ConfigError naming the key), before any file is read.
        download(cfg) -> a local folder for `data.dataset` when no data dir is given.
        read_data(cfg, data_dir, splits) -> a data object (validated; DataError naming the bad file) whose
            `facts` dict is what the run's metadata records.
        prepare_data(cfg, data, cache_dir, splits, progress) -> {split: lstm_apps.inputs.shards.Manifest}: with
            data.cache set, encode the splits once into shards under cache_dir (kept while their sources and
            settings are unchanged) and point `data` at them, so the pipelines stream instead of holding the
            split in memory. `progress(split, done, total)` after every shard. Tasks without it refuse data.cache.
    Training (called in this order, after the seed is set):
        prepare_run(cfg, data, run) -> assets: the run's files derived from the training split (labels,
            vocabulary, subword models), written on the first session and read back when resuming.
        build_model(cfg, data, assets) -> an uncompiled keras.Model.
        learning_rate(cfg, data) -> a float or a LearningRateSchedule; loss(cfg); metrics(cfg) -> list.
        datasets(cfg, data, assets) -> (training dataset, validation dataset).
        callbacks(cfg) -> extra Keras callbacks (run before the project's own).
        join_members(models, data) -> one model from finished ensemble members (tasks with `model.members`).
    Inference:
        inference(cfg, run, options) -> the task's inference tf.Module: `endpoints()` {signature: (function,
            [TensorSpec])}, `warmup_inputs()`, `serving_info()`, `trackables()`; it serves evaluate, predict and
            the export alike.
        score(cfg, module, data, split, run) -> metrics dict (JSON-serializable) for `evaluate`.
        predict(signatures, info, inputs, options, module) -> iterable of dicts: `signatures` are the exported
            signatures' callables (keyword arguments in, dict out) from the module or a loaded SavedModel, `info`
            its serving info, `module` the inference module (None with --model).
    """

    name = None
    presets_dir = None
    dataset_presets = {}
    renamed_keys = {}
    saved_model_imports = ()
    prepared_splits = ("train", "valid", "test")

    def dataset(self, cfg, data_dir):
        return None

    def check_config(self, cfg):
        pass

    def download(self, cfg):
        raise NotImplementedError

    def read_data(self, cfg, data_dir, splits):
        raise NotImplementedError

    def prepare_data(self, cfg, data, cache_dir, splits, progress=None):
        raise ConfigError(f"data.cache: the {self.name} task does not stream prepared shards yet; leave it unset")

    def prepare_run(self, cfg, data, run):
        return None

    def build_model(self, cfg, data, assets):
        raise NotImplementedError

    def learning_rate(self, cfg, data):
        return cfg["train"]["learning_rate"]

    def loss(self, cfg):
        raise NotImplementedError

    def metrics(self, cfg):
        return []

    def datasets(self, cfg, data, assets):
        raise NotImplementedError

    def callbacks(self, cfg):
        return []

    def join_members(self, models, data):
        raise NotImplementedError

    def inference(self, cfg, run, options):
        raise NotImplementedError

    def score(self, cfg, module, data, split, run):
        raise NotImplementedError

    def predict(self, signatures, info, inputs, options, module=None):
        raise NotImplementedError
