"""The speech-keywords task's parts: spoken-word classification from raw audio."""
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from lstm_apps import config as config_lib
from lstm_apps.errors import ConfigError, DataError
from lstm_apps.inputs.audio import AUDIO_SUFFIXES, audio_backend, read_audio
from lstm_apps.tasks import Task
from pipelines.keywords import data as data_lib
from pipelines.keywords import pipeline
from pipelines.keywords.inference import KeywordSpotter
from pipelines.keywords.model import MODELS, build_model, clip_features, ensemble_model

LABELS_FILE = "labels.json"
NORMALIZER_FILE = "normalizer.json"  # the feature normaliser's statistics on the training split


def adapted_normalizer(cfg, data):
    """Per-bin feature mean/variance from the (unaugmented) training clips, stored in the model."""
    features = clip_features(cfg, data.sample_rate)
    normalizer = keras.layers.Normalization(axis=-1, name="normalize")
    normalizer.adapt(pipeline.waveform_dataset(data, "train").batch(256).map(lambda w, _: features(w)))
    return normalizer


def normalizer_statistics(cfg, data):
    """The adapted normaliser's weights as JSON (what NORMALIZER_FILE holds): mean and variance per feature bin,
    and Keras's count (kept so the layer's weights list is the one adapt leaves). Python floats hold float32
    values exactly, so the weights read back are bit-identical."""
    mean, variance, count = adapted_normalizer(cfg, data).get_weights()
    return {"mean": mean.tolist(), "variance": variance.tolist(), "count": int(count)}


def set_normalizer(normalizer, statistics):
    """Give a built, unadapted Normalization layer the weights `normalizer_statistics` recorded. The layer keeps
    its three variables (mean, variance, count), so model.keras files and backups written either way load alike."""
    values = (statistics["mean"], statistics["variance"], statistics["count"])
    normalizer.set_weights([np.asarray(value, weight.dtype) for value, weight in zip(values, normalizer.get_weights())])
    normalizer.finalize_state()  # set_weights assigns the variables only; this refreshes the tensors call() uses


def training_assets(cfg, data):
    """What `prepare_run` returns, computed without a run dir (benchmarks, notebooks)."""
    return {"labels": list(data.labels), "normalizer": normalizer_statistics(cfg, data)}


class KeywordsTask(Task):
    name = "keywords"
    presets_dir = Path(__file__).parent / "presets"
    # full.yaml is tuned for FSDD's official split (its test speakers are heard in training); on Speech Commands,
    # whose test speakers are new, `full` is the speaker-robust ensemble.
    dataset_presets = {("full", "speech_commands"): "speakers"}

    # ----------------------------------------------------------------------------------------- data
    def dataset(self, cfg, data_dir):
        """The layout of the data folder (fsdd or speech_commands), else data.dataset, which would be downloaded.
        None for a folder that is not there or holds no audio: read_data says what is wrong with it."""
        if not data_dir:
            return cfg["data"]["dataset"]
        try:
            return data_lib.detect_layout(Path(data_dir)) if Path(data_dir).is_dir() else None
        except DataError:
            return None

    def check_config(self, cfg):
        if cfg["model"]["name"] not in MODELS:
            raise ConfigError(f"model.name: unknown model '{cfg['model']['name']}' (known: {', '.join(MODELS)})")
        config_lib.require_positive(cfg, "train.batch_size", "train.epochs", "model.conv_time_pool")
        audio_backend(cfg["data"]["audio_backend"])  # an unknown or missing backend fails before any file is read

    def download(self, cfg):
        return data_lib.download(cfg["data"]["dataset"])

    def read_data(self, cfg, data_dir, splits):
        return data_lib.load(cfg, data_dir, check_files=not cfg["data"]["cache"])

    def prepare_data(self, cfg, data, cache_dir, splits, progress=None):
        return pipeline.prepare_splits(data, cfg, cache_dir, splits, progress)

    # ----------------------------------------------------------------------------------------- train
    def prepare_run(self, cfg, data, run):
        """The run's facts about the training split, computed once: the labels and the feature normaliser's
        statistics (a full pass over the training clips). Each file is written only when the run dir lacks it;
        otherwise (a resumed run, a non-chief worker) it is read back and nothing is written. A run dir of a
        release without normalizer.json gains one (the chief writes it before the other workers read it). An
        ensemble's own run needs the labels only: each member has its run dir and normaliser."""
        if (run / LABELS_FILE).exists():
            labels = run.load_json(LABELS_FILE)
            if labels != data.labels:
                raise DataError(f"{data.files['train'][0]}: the data's labels {data.labels} differ from the "
                                f"run's {labels} ({run / LABELS_FILE})")
        else:
            labels = list(data.labels)
            run.save_json(LABELS_FILE, labels)
        assets = {"labels": labels}
        if cfg["model"].get("members"):
            return assets
        if (run / NORMALIZER_FILE).exists():
            assets["normalizer"] = run.load_json(NORMALIZER_FILE)
        else:
            assets["normalizer"] = normalizer_statistics(cfg, data)
            run.save_json(NORMALIZER_FILE, assets["normalizer"])
        return assets

    def build_model(self, cfg, data, assets):
        """The network from the run's assets (`prepare_run`); the data give only their facts (rate, length)."""
        normalizer = keras.layers.Normalization(axis=-1, name="normalize")
        model = build_model(cfg, len(assets["labels"]), data.sample_rate, data.num_samples, normalizer)
        set_normalizer(normalizer, assets["normalizer"])  # built inside the model, on the features' shape
        return model

    def learning_rate(self, cfg, data):
        """Cosine decay over the whole run (the schedule resumes with the optimizer's step count)."""
        steps_per_epoch = -(-pipeline.split_size(data, "train") // cfg["train"]["batch_size"])
        return keras.optimizers.schedules.CosineDecay(
            cfg["train"]["learning_rate"], decay_steps=steps_per_epoch * cfg["train"]["epochs"], alpha=0.05)

    def loss(self, cfg):
        return keras.losses.SparseCategoricalCrossentropy()

    def metrics(self, cfg):
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    def datasets(self, cfg, data, assets):
        return (pipeline.training_dataset(data, cfg),
                pipeline.evaluation_dataset(data, "valid", cfg["train"]["batch_size"]))

    def join_members(self, models, data):
        return ensemble_model(models, data.num_samples)

    # ----------------------------------------------------------------------------------------- inference
    def inference(self, cfg, run, options):
        sample_rate = run.metadata().get("sample_rate") or cfg["data"]["sample_rate"]
        return KeywordSpotter(run.load_model(), run.load_json(LABELS_FILE), sample_rate)

    def score(self, cfg, module, data, split, run):
        from sklearn.metrics import classification_report, confusion_matrix

        if split not in data_lib.SPLITS:
            raise ConfigError(f"--split {split}: expected one of {', '.join(data_lib.SPLITS)}")
        labels = list(module.labels)
        if data.labels != labels:
            raise DataError(f"{data.files['train'][0]}: the data's labels {data.labels} differ from the run's "
                            f"{labels}")
        probabilities = module.model.predict(pipeline.evaluation_dataset(data, split, 256), verbose=0)
        truth = pipeline.split_targets(data, split)
        predicted = probabilities.argmax(-1)
        ids = list(range(len(labels)))
        report = classification_report(truth, predicted, labels=ids, target_names=labels, output_dict=True,
                                       zero_division=0)
        matrix = confusion_matrix(truth, predicted, labels=ids)
        plot_confusion_matrix(matrix, labels, run / f"confusion-{split}.png", split)
        nll = -np.mean(np.log(np.maximum(probabilities[np.arange(len(truth)), truth], 1e-12)))
        return {
            "split": split,
            "accuracy": float(np.mean(predicted == truth)),
            "loss": float(nll),
            "examples": int(len(truth)),
            "macro_precision": report["macro avg"]["precision"],
            "macro_recall": report["macro avg"]["recall"],
            "per_class": {label: {"precision": report[label]["precision"], "recall": report[label]["recall"],
                                  "support": int(report[label]["support"])} for label in labels},
            "confusion_matrix": matrix.tolist(),
        }

    def predict(self, signatures, info, inputs, options, module=None):
        """WAV files go to serving_wav as bytes (decoded and resampled in the graph), other formats are decoded
        here and go to serving_default: what a TF Serving client would send."""
        if not inputs:
            raise ConfigError("predict: expected at least one INPUT (an audio file)")
        paths = [_audio_path(p) for p in inputs]
        for path in paths:
            waveform = read_audio(path, info["sample_rate"])  # the same checks (one clear line) for every input
            if path.suffix.lower() == ".wav":
                outputs = signatures["serving_wav"](wav=tf.constant([path.read_bytes()]))
            else:
                outputs = signatures["serving_default"](waveform=tf.constant(waveform[None]))
            yield {"input": str(path), "label": outputs["label"].numpy()[0].decode(),
                   "probability": round(float(outputs["probability"].numpy()[0]), 6)}


def plot_confusion_matrix(matrix, labels, path, split):
    from matplotlib.figure import Figure
    from sklearn.metrics import ConfusionMatrixDisplay

    fig = Figure(figsize=(1 + 0.6 * len(labels), 1 + 0.6 * len(labels)))
    ax = fig.subplots()
    ConfusionMatrixDisplay(matrix, display_labels=labels).plot(ax=ax, colorbar=False, xticks_rotation=45)
    ax.set_title(f"confusion matrix ({split})")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def _audio_path(path):
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; expected an audio file ({', '.join(AUDIO_SUFFIXES)})")
    return path


TASK = KeywordsTask()
