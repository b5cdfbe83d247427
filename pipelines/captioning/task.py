"""The captioning task: clips -> frame features (cached) -> S2VT or SA-LSTM -> captions decoded greedily or with
beam search (`lstm_apps.decoding`), scored with pycocoevalcap (BLEU-1..4, METEOR, ROUGE-L, CIDEr)."""
import collections
import contextlib
import io
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
import yaml

from lstm_apps import decoding
from lstm_apps import export as export_lib
from lstm_apps import training
from lstm_apps.config import require_positive, split_name
from lstm_apps.errors import ConfigError, DataError
from lstm_apps.inputs.download import resolve_data_dir
from lstm_apps.inputs.text import EOS_ID, PAD_ID, UNK_ID, Vocabulary
from lstm_apps.inputs.video import VIDEO_SUFFIXES, read_frames
from lstm_apps.losses import MaskedCrossEntropy
from lstm_apps.metrics import Perplexity
from lstm_apps.tasks import Task
from pipelines.captioning import data as data_lib
from pipelines.captioning import features as features_lib
from pipelines.captioning.model import ARCHITECTURES, build_captioner

VOCABULARY_FILE = "vocabulary.json"
EXPORT_INFO = Path("assets.extra") / "lstm_apps.yaml"
COCO_KEYS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")


# --------------------------------------------------------------------------------------------- data
def keras_home():
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))


def download(name, cache_dir=None):
    """`generated`: write the generated clips once into the Keras cache (there is no MSVD download: its videos
    are not redistributable; give --data-dir with the S2VT caption folder and data.features)."""
    if name != "generated":
        raise DataError(f"data.dataset: '{name}' cannot be downloaded (known: generated); pass --data-dir with the "
                        f"S2VT caption folder")
    from pipelines.captioning import synthetic

    folder = Path(cache_dir or keras_home()) / "datasets" / "lstm_apps_captioning_clips"
    if not (folder / data_lib.MAP_FILE).exists():
        synthetic.generate(folder)
    return str(folder)


@dataclass
class ClipData:
    captions: data_lib.Captions
    arrays: dict = field(default_factory=dict)     # split -> {clip: features (T, D) or frames (T, H, W, 3)}


def feature_cache(cfg, data_dir):
    """features.cache_dir, or <data.dir>/features/<backbone>-<weights>-<frames> (the Keras cache when data.dir is
    read-only): one cache per way of computing the features, shared by every run on the same data."""
    features_cfg = cfg["features"]
    if features_cfg["cache_dir"]:
        return Path(features_cfg["cache_dir"])
    if features_cfg["backbone"] == features_lib.TRAINABLE:  # the decoded frames themselves
        tag = f"frames-{features_cfg['size']}px-{cfg['data']['num_frames']}"
    else:
        tag = f"{features_cfg['backbone']}-{Path(str(features_cfg['weights'])).stem}-{cfg['data']['num_frames']}"
    root = data_dir if os.access(data_dir, os.W_OK) else keras_home() / "lstm_apps" / data_dir.name
    return root / "features" / tag


def clip_arrays(cfg, data_dir, clips, tail=None):
    """{clip: array} for `clips`: read from data.features, or decoded from the videos and extracted into the
    cache first. Clips without features (or without a video) are left out, and counted on stdout."""
    data_cfg, features_cfg = cfg["data"], cfg["features"]
    if data_cfg["features"]:
        source = Path(data_cfg["features"])
    else:
        folder = data_dir / data_cfg["videos"]
        if not folder.is_dir():
            raise DataError(f"{folder}: no such folder; expected the clips' video files (data.videos) or "
                            f"precomputed features (data.features)")
        videos = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in VIDEO_SUFFIXES}
        source = feature_cache(cfg, data_dir)
        features_lib.extract({c: videos[c] for c in clips if c in videos}, source, features_cfg["backbone"],
                             features_cfg["weights"], data_cfg["num_frames"], size=features_cfg["size"],
                             batch_size=features_cfg["batch_size"])
    arrays = features_lib.read_feature_set(source, sorted(clips), data_cfg["num_frames"], tail)
    if len(arrays) < len(clips):
        print(f"{source}: {len(clips) - len(arrays)} of {len(clips)} clips have no features and are left out")
    return arrays


def load(cfg, splits, tail=None):
    data_dir = resolve_data_dir(cfg["data"], download)
    if cfg["data"]["features"]:
        cfg["data"]["features"] = str(Path(cfg["data"]["features"]).resolve())
    clip_data = ClipData(data_lib.load(data_dir, splits))
    for split in splits:
        references = clip_data.captions.references[split]
        arrays = clip_arrays(cfg, data_dir, references, tail)
        if not arrays:
            raise DataError(f"{data_dir}: no clip of split '{split}' has features; expected videos in "
                            f"data.videos or precomputed features in data.features")
        clip_data.arrays[split] = arrays
    return clip_data


def examples(arrays, references, vocabulary, data_cfg, train_cfg, training_split):
    """(([clip, <eos> + words], words + <eos>) batches. Training: each clip `captions_per_clip` times per epoch,
    shuffled, each time with a reference drawn at random (so all references are used across epochs).
    Validation: every (clip, reference) pair once, in order."""
    clips = sorted(arrays)
    limit = data_cfg["max_caption_length"]
    sentences, starts, counts = [], [], []
    for clip in clips:
        starts.append(len(sentences))
        counts.append(len(references[clip]))
        sentences += [vocabulary.encode(s.split()[:limit])[0] for s in references[clip]]
    stacked = tf.constant(np.stack([arrays[c] for c in clips]))
    sentences = tf.ragged.constant(sentences, dtype=tf.int32)
    # (clip index, sentence index) pairs
    if training_split:
        first, count = tf.constant(starts, tf.int64), tf.constant(counts, tf.int64)
        clip_indices = (tf.data.Dataset.range(len(clips)).repeat(data_cfg["captions_per_clip"])
                        .shuffle(len(clips) * data_cfg["captions_per_clip"], seed=train_cfg["seed"],
                                 reshuffle_each_iteration=True))
        draws = tf.data.Dataset.random(seed=train_cfg["seed"], rerandomize_each_iteration=True)
        pairs = tf.data.Dataset.zip(clip_indices, draws).map(lambda i, draw: (i, first[i] + draw % count[i]))
    else:
        pairs = tf.data.Dataset.from_tensor_slices((
            np.array([i for i in range(len(clips)) for _ in range(counts[i])], np.int64),
            np.arange(sum(counts), dtype=np.int64)))

    def example(index, sentence):
        words = sentences[sentence]
        return ((tf.gather(stacked, index), tf.concat([[EOS_ID], words], 0)), tf.concat([words, [EOS_ID]], 0))

    return (pairs.map(example, num_parallel_calls=tf.data.AUTOTUNE)
            .padded_batch(train_cfg["batch_size"], padding_values=((None, PAD_ID), PAD_ID))
            .prefetch(tf.data.AUTOTUNE))


# --------------------------------------------------------------------------------------------- decoding
class Captioner(tf.Module):
    """Features or frames in, caption strings out, all TF ops (frame encoder, the model's encode and step, beam
    search, id -> word): the same object serves `evaluate`, `predict --run-dir` and the exported SavedModel."""

    def __init__(self, model, words, cfg):
        super().__init__()
        self.model = model
        self.architecture = ARCHITECTURES[cfg["model"]["architecture"]]
        self.features_cfg = features_cfg = cfg["features"]
        if features_cfg["backbone"] == features_lib.TRAINABLE:
            self._frame_encoder = model.get_layer("frames").layer
            self.frame_shape = tuple(self._frame_encoder.inputs[0].shape[1:])
            self.feature_dim = int(self._frame_encoder.outputs[0].shape[-1])
        else:  # the frozen network the features came from, built only when frames come in
            self._frame_encoder = None
            self.frame_shape = (*features_lib.BACKBONES[features_cfg["backbone"]].size, 3)
            self.feature_dim = int(model.inputs[0].shape[-1])
        self.num_frames = cfg["data"]["num_frames"]
        self.words = tf.constant(words)
        decode_cfg = cfg["decode"]
        self.beam_size, self.alpha, self.max_length = (decode_cfg[k] for k in ("beam_size", "length_penalty",
                                                                                 "max_length"))
        self._graphs = {}

    @property
    def frame_encoder(self):
        if self._frame_encoder is None:
            self._frame_encoder = features_lib.build_backbone(self.features_cfg["backbone"],
                                                              self.features_cfg["weights"])
        return self._frame_encoder

    def features(self, frames):
        """uint8 frames [batch, T, H, W, 3] -> features [batch, T, D], every frame through the frame encoder."""
        shape = tf.shape(frames)
        per_frame = self.frame_encoder(tf.reshape(frames, [-1, *self.frame_shape]), training=False)
        return tf.reshape(per_frame, [shape[0], shape[1], self.feature_dim])

    def caption(self, features, beam_size):
        """features [batch, T, D] -> caption string[batch], score float32[batch] (log-probability of the caption
        and its end over the GNMT length penalty)."""
        features = tf.cast(features, tf.float32)
        batch = tf.shape(features)[0]
        context, states = self.architecture.encode(self.model, features)
        max_lengths = tf.fill([batch], self.max_length)
        banned = (PAD_ID, UNK_ID)

        def step_over(context):
            return lambda tokens, states: self.architecture.step(self.model, context, tokens, states)

        if beam_size == 1:
            tokens, lengths, log_probs = decoding.greedy_search(step_over(context), states, batch, EOS_ID, EOS_ID,
                                                                max_lengths, banned_ids=banned)
            scores = log_probs / decoding.gnmt_length_penalty(lengths + 1, self.alpha)
        else:
            context, states = tf.nest.map_structure(lambda t: decoding.tile_beams(t, beam_size), (context, states))
            tokens, lengths, scores = decoding.beam_search(step_over(context), states, batch, beam_size, EOS_ID,
                                                           EOS_ID, max_lengths, alpha=self.alpha, banned_ids=banned)
        words = tf.RaggedTensor.from_tensor(tf.gather(self.words, tokens), lengths=lengths)
        return {"caption": tf.strings.reduce_join(words, axis=1, separator=" "), "score": scores}

    def caption_graph(self, beam_size):
        """`caption` as a tf.function for one beam size (traced once per size)."""
        if beam_size not in self._graphs:
            self._graphs[beam_size] = tf.function(lambda features: self.caption(features, beam_size))
        return self._graphs[beam_size]

    def serve_features(self, features):
        return self.caption(features, self.beam_size)

    def serve_frames(self, frames):
        return self.caption(self.features(frames), self.beam_size)


def caption_all(captioner, arrays, beam_size, batch_size=32):
    """Captions and scores of many clips' arrays (features, or frames with the trainable encoder), batched."""
    graph = captioner.caption_graph(beam_size)
    frames = arrays[0].dtype == np.uint8
    captions, scores = [], []
    for start in range(0, len(arrays), batch_size):
        batch = tf.constant(np.stack(arrays[start:start + batch_size]))
        outputs = graph(captioner.features(batch) if frames else batch)
        captions += [c.decode("utf-8") for c in outputs["caption"].numpy()]
        scores += [round(float(s), 4) for s in outputs["score"].numpy()]
    return captions, scores


# --------------------------------------------------------------------------------------------- scoring
def coco_scores(hypotheses, references):
    """pycocoevalcap scores, under its own key names, of {clip: caption} against {clip: [references]}: the PTB
    tokenizer and METEOR run on Java; without Java the text is lowercased and split on whitespace and METEOR is
    left out (null)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    clips = sorted(hypotheses)
    gts = {c: [{"caption": r} for r in references[c]] for c in clips}
    res = {c: [{"caption": hypotheses[c]}] for c in clips}
    java = shutil.which("java") is not None
    scorers = [(Bleu(4), COCO_KEYS[:4]), (Rouge(), ("ROUGE_L",)), (Cider(), ("CIDEr",))]
    result = {"METEOR": None}
    with contextlib.redirect_stdout(io.StringIO()):  # the scorers print their internals
        if java:
            from pycocoevalcap.meteor.meteor import Meteor
            from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

            tokenizer = PTBTokenizer()
            gts, res = tokenizer.tokenize(gts), tokenizer.tokenize(res)
            scorers.insert(1, (Meteor(), ("METEOR",)))
        else:
            gts = {c: [" ".join(x["caption"].lower().split()) for x in v] for c, v in gts.items()}
            res = {c: [" ".join(x["caption"].lower().split()) for x in v] for c, v in res.items()}
        for scorer, keys in scorers:
            score, _ = scorer.compute_score(gts, res)
            for key, value in zip(keys, score if len(keys) > 1 else [score]):
                result[key] = round(float(value), 4)
    return {key: result[key] for key in COCO_KEYS}


def most_frequent_caption(references):
    """The training split's most frequent reference (ties: the alphabetically first): the baseline every clip gets."""
    counts = collections.Counter(s for refs in references.values() for s in refs)
    return min(counts, key=lambda s: (-counts[s], s))


# --------------------------------------------------------------------------------------------- the task
class CaptioningTask(Task):
    name = "captioning"
    presets_dir = Path(__file__).parent / "presets"

    def load_data(self, cfg):
        require_positive(cfg, "data.num_frames", "data.max_caption_length", "data.captions_per_clip",
                         "train.batch_size", "train.epochs", "decode.beam_size", "decode.max_length")
        if cfg["model"]["architecture"] not in ARCHITECTURES:
            raise ConfigError(f"model.architecture: unknown architecture '{cfg['model']['architecture']}' "
                              f"(known: {', '.join(ARCHITECTURES)})")
        training.make_optimizer(cfg["train"]["optimizer"], cfg["train"]["learning_rate"])  # a bad name fails early
        if cfg["features"]["backbone"] not in (features_lib.TRAINABLE, *features_lib.BACKBONES):
            features_lib.build_backbone(cfg["features"]["backbone"])  # the error that lists the known names
        data_cfg = cfg["data"]
        return load(cfg, (data_cfg["train_split"], data_cfg["valid_split"]))

    def train(self, cfg, data, run_dir):
        data_cfg, train_cfg = cfg["data"], cfg["train"]
        train_split, valid_split = data_cfg["train_split"], data_cfg["valid_split"]
        references = data.captions.references
        vocabulary_path = run_dir / VOCABULARY_FILE
        if vocabulary_path.exists():  # resuming: the ids the backup was trained with
            vocabulary = Vocabulary.from_json(training.load_json(vocabulary_path))
        else:
            tokens = [w for clip in data.arrays[train_split] for s in references[train_split][clip] for w in s.split()]
            vocabulary = Vocabulary.from_tokens(tokens, min_count=data_cfg["min_count"])
            training.save_json_atomic(vocabulary_path, vocabulary.to_json())
        for split in (train_split, valid_split):
            print(f"{split}: {len(data.arrays[split])} clips, "
                  f"{sum(len(references[split][c]) for c in data.arrays[split])} captions")
        print(f"vocabulary: {len(vocabulary)} words (min count {data_cfg['min_count']})", flush=True)
        datasets = [examples(data.arrays[split], references[split], vocabulary, data_cfg, train_cfg, split == train_split)
                    for split in (train_split, valid_split)]
        clip_shape = next(iter(data.arrays[train_split].values())).shape
        model = build_captioner(cfg, len(vocabulary), clip_shape)
        model.compile(optimizer=training.make_optimizer(train_cfg["optimizer"], train_cfg["learning_rate"],
                                                        train_cfg["clipnorm"]),
                      loss=MaskedCrossEntropy(PAD_ID, train_cfg["label_smoothing"]),
                      metrics=[Perplexity(mask_id=PAD_ID)])
        model.summary(print_fn=lambda line, **_: print(line))
        training.fit(model, *datasets, run_dir, train_cfg)

    def captioner(self, cfg, run_dir):
        vocabulary = Vocabulary.from_json(training.load_json(Path(run_dir) / VOCABULARY_FILE))
        return Captioner(training.load_model(run_dir), vocabulary.words, cfg)

    def evaluate(self, cfg, run_dir, split):
        data_cfg = cfg["data"]
        split = split_name(cfg, split)
        captioner = self.captioner(cfg, run_dir)
        trainable = cfg["features"]["backbone"] == features_lib.TRAINABLE  # the model reads frames, not features
        data = load(cfg, (split,), tail=captioner.frame_shape if trainable else (captioner.feature_dim,))
        captions = data_lib.load(data.captions.folder, (data_cfg["train_split"],))
        clips = sorted(data.arrays[split])
        references = {c: data.captions.references[split][c] for c in clips}
        start = time.perf_counter()
        hypotheses, scores = caption_all(captioner, [data.arrays[split][c] for c in clips], captioner.beam_size)
        seconds = time.perf_counter() - start
        training.write_atomic(run_dir / f"captions-{split}.tsv",
                              "".join(f"{c}\t{h}\t{s}\n" for c, h, s in zip(clips, hypotheses, scores)))
        baseline = most_frequent_caption(captions.references[data_cfg["train_split"]])
        return {"split": split, **coco_scores(dict(zip(clips, hypotheses)), references), "clips": len(clips),
                "beam_size": captioner.beam_size, "clips_per_second": round(len(clips) / seconds, 2),
                "distinct_captions": len(set(hypotheses)),
                "baseline": {"caption": baseline, **coco_scores({c: baseline for c in clips}, references)}}

    def predict(self, cfg, inputs, run_dir, options=None):
        options = options or {}
        captioner = self.captioner(cfg, run_dir)
        beam = captioner.beam_size if options.get("beam") is None else options["beam"]
        if beam < 1:
            raise ConfigError(f"--beam {beam}: expected a positive integer")
        graph = captioner.caption_graph(beam)
        for path in check_inputs(inputs):
            if path.suffix == ".npy":
                features = features_lib.load_features(path, tail=(captioner.feature_dim,))
            else:
                frames = read_frames(path, captioner.num_frames, size=captioner.frame_shape[:2])
                features = captioner.features(tf.constant(frames[None]))[0]
            outputs = graph(tf.constant(features)[None])
            yield {"input": str(path), "caption": outputs["caption"].numpy()[0].decode("utf-8"),
                   "score": round(float(outputs["score"].numpy()[0]), 4)}

    def predict_saved_model(self, saved_model_dir, inputs, options=None):
        options = options or {}
        if options.get("beam"):
            raise ConfigError("--beam: not available with --model (the export decodes with its own beam); "
                              "use --run-dir")
        info = yaml.safe_load((saved_model_dir / EXPORT_INFO).read_text(encoding="utf-8"))
        signatures = tf.saved_model.load(str(saved_model_dir)).signatures
        for path in check_inputs(inputs):
            if path.suffix == ".npy":
                features = features_lib.load_features(path, tail=(info["feature_dim"],))
                outputs = signatures["serving_default"](features=tf.constant(features[None]))
            elif "frames" not in signatures:
                raise ConfigError(f"{path}: this export has no frames signature (its backbone's weights were not "
                                  f"available); give a .npy features file")
            else:
                frames = read_frames(path, info["num_frames"], size=tuple(info["frame_shape"][:2]))
                outputs = signatures["frames"](frames=tf.constant(frames[None]))
            yield {"input": str(path), "caption": outputs["caption"].numpy()[0].decode("utf-8"),
                   "score": round(float(outputs["score"].numpy()[0]), 4)}

    def export(self, cfg, run_dir, export_dir):
        captioner = self.captioner(cfg, run_dir)
        endpoints = {"serving_default": (captioner.serve_features, [
            tf.TensorSpec([None, None, captioner.feature_dim], tf.float32, name="features")])}
        warmup = {"serving_default": {"features": np.zeros((1, captioner.num_frames, captioner.feature_dim),
                                                           np.float32)}}
        trackables = [captioner.model]
        try:
            trackables.append(captioner.frame_encoder)
            endpoints["frames"] = (captioner.serve_frames, [
                tf.TensorSpec([None, None, *captioner.frame_shape], tf.uint8, name="frames")])
            warmup["frames"] = {"frames": np.zeros((1, 2, *captioner.frame_shape), np.uint8)}
        except ConfigError as error:  # e.g. ImageNet weights out of reach: the features signature still serves
            print(f"warning: export without the frames signature: {error}", file=sys.stderr)
        path = export_lib.write_saved_model(export_dir, trackables, endpoints, warmup, model_name="captioning")
        (path / EXPORT_INFO).write_text(yaml.safe_dump({
            "task": self.name, "architecture": cfg["model"]["architecture"], "backbone": cfg["features"]["backbone"],
            "num_frames": captioner.num_frames, "frame_shape": list(captioner.frame_shape),
            "feature_dim": captioner.feature_dim, "beam_size": captioner.beam_size,
            "signatures": sorted(endpoints)}))
        return path


def check_inputs(inputs):
    """The clips to caption: video files or (T, D) .npy feature files, each an existing file."""
    if not inputs:
        raise ConfigError("predict: expected at least one video file or .npy features file")
    paths = [Path(p) for p in inputs]
    for path in paths:
        if path.suffix.lower() not in (*VIDEO_SUFFIXES, ".npy"):
            raise DataError(f"{path}: expected a video file ({', '.join(VIDEO_SUFFIXES)}) or a .npy features file")
        if not path.is_file():
            raise DataError(f"{path}: no such file")
    return paths


TASK = CaptioningTask()
