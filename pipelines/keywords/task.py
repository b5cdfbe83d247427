"""The speech-keywords task: spoken-word classification from raw audio."""
import copy
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
import yaml

from lstm_apps import config as config_lib
from lstm_apps import export as export_lib
from lstm_apps import training
from lstm_apps.errors import ConfigError, DataError
from lstm_apps.inputs.audio import (AUDIO_SUFFIXES, audio_backend, fit_length, load_waveform_dataset, mix_noise,
                                    read_audio, speed_perturb_clip, time_shift, wav_bytes_to_input)
from lstm_apps.tasks import Task
from pipelines.keywords import data as data_lib
from pipelines.keywords.model import MODELS, build_model, clip_features, ensemble_model

LABELS_FILE = "labels.json"
EXPORT_INFO = Path("assets.extra") / "lstm_apps.yaml"
MEMBERS_DIR = "members"


def waveform_dataset(data, split):
    """(waveform, label id) for one split: files decoded in tf.data, plus the split's silence clips; cached."""
    files = load_waveform_dataset(data.files[split], data.sample_rate, data.num_samples, data.audio_backend)
    ds = tf.data.Dataset.zip(files, tf.data.Dataset.from_tensor_slices(np.array(data.targets[split], np.int32)))
    if split in data.silence and len(data.silence[split]):
        silence_id = data.labels.index(data_lib.SILENCE)
        labels = np.full(len(data.silence[split]), silence_id, np.int32)
        ds = ds.concatenate(tf.data.Dataset.from_tensor_slices((data.silence[split], labels)))
    return ds.cache()


def split_targets(data, split):
    """Label ids in the order `waveform_dataset` yields the clips (files, then silence)."""
    silence = [data.labels.index(data_lib.SILENCE)] * len(data.silence[split]) if data.silence else []
    return np.array(data.targets[split] + silence, np.int32)


def split_size(data, split):
    return len(split_targets(data, split))


def training_dataset(data, cfg):
    """Shuffled, augmented (time shift, noise mixing) batches; SpecAugment runs inside the model."""
    augment = cfg["augment"]
    max_shift = int(augment["time_shift_ms"] * data.sample_rate / 1000)
    noise_bank = tf.constant(data.noise_bank)

    def augment_clip(waveform, label):
        if augment["speed_change"] > 0:
            waveform = speed_perturb_clip(waveform, data.sample_rate, augment["speed_change"], data.num_samples)
        if max_shift:
            waveform = time_shift(waveform, max_shift)
        if augment["noise_probability"] > 0:
            waveform = mix_noise(waveform, noise_bank, augment["noise_probability"], augment["noise_volume"])
        return waveform, label

    return (waveform_dataset(data, "train")
            .shuffle(split_size(data, "train"), seed=cfg["train"]["seed"], reshuffle_each_iteration=True)
            .map(augment_clip, num_parallel_calls=tf.data.AUTOTUNE)
            .batch(cfg["train"]["batch_size"])
            .prefetch(tf.data.AUTOTUNE))


def evaluation_dataset(data, split, batch_size):
    return waveform_dataset(data, split).batch(batch_size).prefetch(tf.data.AUTOTUNE)


def compile_model(model, cfg, steps_per_epoch):
    """Adam with cosine decay over the whole run (the schedule resumes with the optimizer's step count)."""
    schedule = keras.optimizers.schedules.CosineDecay(
        cfg["train"]["learning_rate"], decay_steps=steps_per_epoch * cfg["train"]["epochs"], alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=cfg["train"]["clipnorm"]),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])


def adapted_normalizer(cfg, data):
    """Per-bin feature mean/variance from the (unaugmented) training clips, stored in the model."""
    features = clip_features(cfg, data.sample_rate)
    normalizer = keras.layers.Normalization(axis=-1, name="normalize")
    normalizer.adapt(waveform_dataset(data, "train").batch(256).map(lambda w, _: features(w)))
    return normalizer


def train_model(cfg, data, run_dir):
    """Build, compile and fit one model; training.fit leaves RUN_DIR/model.keras when it finishes."""
    model = build_model(cfg, len(data.labels), data.sample_rate, data.num_samples, adapted_normalizer(cfg, data))
    compile_model(model, cfg, steps_per_epoch=-(-split_size(data, "train") // cfg["train"]["batch_size"]))
    model.summary(print_fn=lambda line, **_: print(line))
    training.fit(model, training_dataset(data, cfg),
                 evaluation_dataset(data, "validation", cfg["train"]["batch_size"]), run_dir, cfg["train"])


def member_configs(cfg):
    """The configs of an ensemble's members: model.members holds one list of key=value settings per member,
    applied over this config (as --set would). [] for a single model. Members share the data, so data.* is fixed."""
    single = copy.deepcopy(cfg)
    single["model"]["members"] = []
    members = []
    for index, settings in enumerate(cfg["model"]["members"]):
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


def train_member(cfg, data, member_dir):
    """One ensemble member, an ordinary keywords run dir (resumable, evaluable alone). A finished member is reused,
    so an interrupted ensemble retrains nothing it has finished; its config must match."""
    if (member_dir / training.MODEL_FILE).exists():
        training.require_same_config(member_dir, cfg)
    else:
        print(f"training ensemble member {member_dir}", flush=True)
        training.prepare_run_dir(member_dir, cfg)
        training.set_seed(cfg["train"]["seed"], cfg["train"]["deterministic"])
        training.save_json_atomic(member_dir / LABELS_FILE, data.labels)
        train_model(cfg, data, member_dir)
    return training.load_model(member_dir)


class KeywordsTask(Task):
    name = "keywords"
    presets_dir = Path(__file__).parent / "presets"
    # full.yaml is tuned for FSDD's official split (its test speakers are heard in training); on Speech Commands,
    # whose test speakers are new, `full` is the speaker-robust ensemble.
    dataset_presets = {("full", "speech_commands"): "speakers"}

    def dataset(self, cfg):
        """The layout of data.dir (fsdd or speech_commands), else data.dataset, which would be downloaded. None for
        a folder that is not there or holds no audio: load_data says what is wrong with it."""
        data_dir = cfg["data"]["dir"]
        if not data_dir:
            return cfg["data"]["dataset"]
        try:
            return data_lib.detect_layout(data_dir) if Path(data_dir).is_dir() else None
        except DataError:
            return None

    # ----------------------------------------------------------------------------------------- data
    def load_data(self, cfg):
        members = member_configs(cfg)
        for index, model_cfg in enumerate(members or [cfg]):
            member = f"model.members[{index}]: " if members else ""
            if model_cfg["model"]["name"] not in MODELS:
                raise ConfigError(f"{member}model.name: unknown model '{model_cfg['model']['name']}' "
                                  f"(known: {', '.join(MODELS)})")
            try:
                config_lib.require_positive(model_cfg, "train.batch_size", "train.epochs", "model.conv_time_pool")
            except ConfigError as e:
                raise ConfigError(f"{member}{e}") from None
        audio_backend(cfg["data"]["audio_backend"])  # an unknown or missing backend fails before any file is read
        return data_lib.load(cfg)

    # ----------------------------------------------------------------------------------------- train
    def train(self, cfg, data, run_dir):
        training.save_json_atomic(run_dir / LABELS_FILE, data.labels)
        members = member_configs(cfg)
        if not members:
            train_model(cfg, data, run_dir)
            return
        models = [train_member(member_cfg, data, run_dir / MEMBERS_DIR / str(index))
                  for index, member_cfg in enumerate(members)]
        training.save_model(ensemble_model(models, data.num_samples), run_dir / training.MODEL_FILE)

    # ----------------------------------------------------------------------------------------- evaluate
    def evaluate(self, cfg, run_dir, split):
        from sklearn.metrics import classification_report, confusion_matrix

        if split not in data_lib.SPLITS:
            raise ConfigError(f"--split {split}: expected one of {', '.join(data_lib.SPLITS)}")
        labels = training.load_json(run_dir / LABELS_FILE)
        data = data_lib.load(cfg)
        if data.labels != labels:
            raise DataError(f"{cfg['data']['dir']}: its labels {data.labels} differ from the run's {labels}")
        model = training.load_model(run_dir)
        probabilities = model.predict(evaluation_dataset(data, split, 256), verbose=0)
        truth = split_targets(data, split)
        predicted = probabilities.argmax(-1)
        ids = list(range(len(labels)))
        report = classification_report(truth, predicted, labels=ids, target_names=labels, output_dict=True,
                                       zero_division=0)
        matrix = confusion_matrix(truth, predicted, labels=ids)
        plot_confusion_matrix(matrix, labels, run_dir / f"confusion-{split}.png", split)
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

    # ----------------------------------------------------------------------------------------- predict
    def predict(self, cfg, inputs, run_dir, options=None):
        _require_inputs(inputs)
        labels = training.load_json(run_dir / LABELS_FILE)
        model = training.load_model(run_dir)
        rate, num_samples = cfg["data"]["sample_rate"], int(round(cfg["data"]["clip_seconds"] * cfg["data"]["sample_rate"]))
        waveforms = [fit_length(read_audio(_audio_path(p), rate), num_samples).numpy() for p in inputs]
        probabilities = model.predict(np.stack(waveforms), verbose=0)
        for path, row in zip(inputs, probabilities):
            yield {"input": path, "label": labels[int(row.argmax())], "probability": round(float(row.max()), 6)}

    def predict_saved_model(self, saved_model_dir, inputs, options=None):
        _require_inputs(inputs)
        info = yaml.safe_load((saved_model_dir / EXPORT_INFO).read_text(encoding="utf-8"))
        serving = tf.saved_model.load(str(saved_model_dir)).signatures
        for path in inputs:
            path = _audio_path(path)
            if path.suffix.lower() == ".wav":
                read_audio(path, info["sample_rate"])  # same checks (one clear line) as every other input
                outputs = serving["serving_wav"](wav=tf.constant([tf.io.read_file(str(path)).numpy()]))
            else:
                outputs = serving["serving_default"](
                    waveform=tf.constant(read_audio(path, info["sample_rate"])[None]))
            yield {"input": str(path), "label": outputs["label"].numpy()[0].decode(),
                   "probability": round(float(outputs["probability"].numpy()[0]), 6)}

    # ----------------------------------------------------------------------------------------- export
    def export(self, cfg, run_dir, export_dir):
        labels = training.load_json(run_dir / LABELS_FILE)
        model = training.load_model(run_dir)
        endpoints, warmup = serving_endpoints(model, labels, cfg["data"]["sample_rate"],
                                              int(model.inputs[0].shape[1]))
        path = export_lib.write_saved_model(export_dir, [model], endpoints, warmup, model_name="keywords")
        (path / EXPORT_INFO).write_text(yaml.safe_dump({
            "task": self.name, "labels": labels, "sample_rate": cfg["data"]["sample_rate"],
            "clip_samples": int(model.inputs[0].shape[1])}))
        return path


def serving_endpoints(model, labels, sample_rate, num_samples):
    """serving_default: waveform float32[batch, samples] at `sample_rate` (any length; padded/cropped);
    serving_wav: wav string[batch] (WAV file bytes, any rate). Both -> label string[batch],
    probability float32[batch], probabilities float32[batch, classes] (in the order of labels.json)."""
    label_table = tf.constant(labels)

    def outputs(waveforms):
        probabilities = model(waveforms, training=False)
        best = tf.argmax(probabilities, axis=-1)
        return {"label": tf.gather(label_table, best), "probability": tf.reduce_max(probabilities, axis=-1),
                "probabilities": probabilities}

    def serve_waveform(waveform):
        return outputs(tf.map_fn(lambda w: fit_length(w, num_samples), waveform))

    def serve_wav(wav):
        waveforms = tf.map_fn(lambda b: wav_bytes_to_input(b, sample_rate, num_samples), wav,
                              fn_output_signature=tf.TensorSpec([num_samples], tf.float32))
        return outputs(waveforms)

    silence = np.zeros((1, num_samples), np.float32)
    wav_bytes = tf.audio.encode_wav(silence.T, sample_rate).numpy()
    endpoints = {
        "serving_default": (serve_waveform, [tf.TensorSpec([None, None], tf.float32, name="waveform")]),
        "serving_wav": (serve_wav, [tf.TensorSpec([None], tf.string, name="wav")]),
    }
    warmup = {"serving_default": {"waveform": silence}, "serving_wav": {"wav": np.array([wav_bytes], object)}}
    return endpoints, warmup


def plot_confusion_matrix(matrix, labels, path, split):
    from matplotlib.figure import Figure
    from sklearn.metrics import ConfusionMatrixDisplay

    fig = Figure(figsize=(1 + 0.6 * len(labels), 1 + 0.6 * len(labels)))
    ax = fig.subplots()
    ConfusionMatrixDisplay(matrix, display_labels=labels).plot(ax=ax, colorbar=False, xticks_rotation=45)
    ax.set_title(f"confusion matrix ({split})")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def _require_inputs(inputs):
    if not inputs:
        raise ConfigError("predict: expected at least one INPUT (an audio file)")


def _audio_path(path):
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; expected an audio file ({', '.join(AUDIO_SUFFIXES)})")
    return path


TASK = KeywordsTask()
