"""The task registry: name -> Task. A task is one folder in ``pipelines/`` plus one line here.

A Task answers a few questions (how to read its data, build its model, score it, serve it, predict for a user's
input); the CLI and ``lstm_apps.training`` do the rest.
"""
import importlib

from lstm_apps.errors import ConfigError

# task name -> module that defines a ``TASK`` object (imported only when the task is used)
TASK_MODULES = {
    "keywords": "pipelines.keywords.task",
    "language-model": "pipelines.language_model.task",
    "translation": "pipelines.translation.task",
    "captioning": "pipelines.captioning.task",
}

# Extra `predict` flags of a task: flag -> argparse keyword arguments. They reach Task.predict as `options`
# (dest = the flag without dashes; None when not given). Declared here so `--help` needs no TensorFlow import.
PREDICT_OPTIONS = {
    "language-model": {
        "--score": dict(metavar="FILE", help="print the perplexity of a text file (one sentence per line)"),
        "--max-tokens": dict(type=int, help="words to generate after each prompt (default: generate.max_tokens)"),
        "--temperature": dict(type=float, help="sampling temperature, 0 = greedy (default: generate.temperature)"),
        "--top-k": dict(type=int, help="sample from the k most likely words (default: generate.top_k)"),
        "--top-p": dict(type=float, help="nucleus sampling probability mass (default: generate.top_p)"),
        "--seed": dict(type=int, help="sampling seed (default: generate.seed)"),
    },
    "captioning": {
        "--beam": dict(type=int, help="beam size, 1 = greedy (default: decode.beam_size)"),
    },
    "translation": {
        "--beam": dict(type=int, help="beam size, 1 = greedy (default: decode.beam_size)"),
        "--attention": dict(metavar="PNG", help="write the attention heat map of the first sentence to PNG"),
    },
}


def get_task(name):
    if name not in TASK_MODULES:
        raise ConfigError(f"unknown task '{name}' (available: {', '.join(TASK_MODULES)})")
    return importlib.import_module(TASK_MODULES[name]).TASK


class Task:
    """The questions a task answers; `lstm_apps.runner` and the CLI do the rest.

    presets_dir: folder with quick.yaml (every key, the defaults) and full.yaml.
    dataset_presets: {(preset, dataset): preset file stem}: a preset tuned for one dataset stands in for the named
        one when the data are that dataset (keywords: `full` on Speech Commands is `speakers.yaml`).
    dataset(cfg) -> the name of the dataset the config points at, as dataset_presets spells it.
    load_data(cfg) -> data: read and validate the dataset (DataError naming the bad file), no side effects.
    train(cfg, data, run_dir): build the model and call `lstm_apps.training.fit`.
    evaluate(cfg, run_dir, split) -> dict of metrics (JSON-serializable).
    predict(cfg, inputs, run_dir, options) / predict_saved_model(saved_model_dir, inputs, options) -> iterable of
        dicts; options: the task's PREDICT_OPTIONS values.
    export(cfg, run_dir, export_dir) -> path of the new SavedModel version.
    """

    name = None
    presets_dir = None
    dataset_presets = {}

    def dataset(self, cfg):
        return None

    def load_data(self, cfg):
        raise NotImplementedError

    def train(self, cfg, data, run_dir):
        raise NotImplementedError

    def evaluate(self, cfg, run_dir, split):
        raise NotImplementedError

    def predict(self, cfg, inputs, run_dir, options=None):
        raise NotImplementedError

    def predict_saved_model(self, saved_model_dir, inputs, options=None):
        raise NotImplementedError

    def export(self, cfg, run_dir, export_dir):
        raise NotImplementedError
