"""The captioning task's parts: clips -> frame features (cached) -> S2VT or SA-LSTM -> captions decoded greedily
or with beam search (`lstm_apps.decoding`), scored with pycocoevalcap (BLEU-1..4, METEOR, ROUGE-L, CIDEr)."""
import time
from pathlib import Path

import tensorflow as tf

from lstm_apps import config as config_lib
from lstm_apps import runner
from lstm_apps.errors import ConfigError, DataError
from lstm_apps.inputs.text import PAD_ID, Vocabulary
from lstm_apps.inputs.video import VIDEO_SUFFIXES, read_frames
from lstm_apps.losses import MaskedCrossEntropy
from lstm_apps.metrics import Perplexity
from lstm_apps.tasks import Task
from pipelines.captioning import data as data_lib
from pipelines.captioning import features as features_lib
from pipelines.captioning import pipeline
from pipelines.captioning.inference import Captioner
from pipelines.captioning.model import ARCHITECTURES, build_captioner
from pipelines.captioning.scoring import coco_scores, most_frequent_caption

VOCABULARY_FILE = "vocabulary.json"


class CaptioningTask(Task):
    name = "captioning"
    presets_dir = Path(__file__).parent / "presets"
    renamed_keys = {"model.architecture": "model.name"}
    prepared_splits = pipeline.STREAMED_SPLITS  # evaluation captions the arrays of its split

    # ----------------------------------------------------------------------------------------- data
    def check_config(self, cfg):
        config_lib.require_positive(cfg, "data.num_frames", "data.max_caption_length", "data.captions_per_clip",
                                    "train.batch_size", "train.epochs", "decode.beam_size", "decode.max_length")
        if cfg["model"]["name"] not in ARCHITECTURES:
            raise ConfigError(f"model.name: unknown model '{cfg['model']['name']}' (known: {', '.join(ARCHITECTURES)})")
        if cfg["features"]["backbone"] not in (features_lib.TRAINABLE, *features_lib.BACKBONES):
            features_lib.build_backbone(cfg["features"]["backbone"])  # the error that lists the known names

    def download(self, cfg):
        return data_lib.download(cfg["data"]["dataset"])

    def read_data(self, cfg, data_dir, splits):
        """The captions of `splits`, checked line by line. For training (the runner's train and valid splits)
        also every clip's array, read or extracted now, so a bad video or features file fails before the run dir
        is touched; `evaluate` reads its split's arrays in `score`, from the sources the run recorded."""
        return data_lib.load(cfg, data_dir, splits, arrays=tuple(splits) == runner.TRAINING_SPLITS)

    def prepare_data(self, cfg, data, cache_dir, splits, progress=None):
        return pipeline.prepare_splits(data, cfg, cache_dir, splits, progress)

    # ----------------------------------------------------------------------------------------- train
    def prepare_run(self, cfg, data, run):
        """The vocabulary of the training captions (of clips with an array): built the first time, read back when
        resuming (the ids the backup was trained with)."""
        if (run / VOCABULARY_FILE).exists():
            vocabulary = Vocabulary.from_json(run.load_json(VOCABULARY_FILE))
        else:
            train = data.references("train")
            vocabulary = pipeline.build_vocabulary({c: train[c] for c in data.arrays["train"]},
                                                   cfg["data"]["min_count"])
            run.save_json(VOCABULARY_FILE, vocabulary.to_json())
        for split in ("train", "valid"):
            references = data.references(split)
            print(f"{data.splits[split]}: {len(data.arrays[split])} clips, "
                  f"{sum(len(references[c]) for c in data.arrays[split])} captions")
        print(f"vocabulary: {len(vocabulary)} words (min count {cfg['data']['min_count']})", flush=True)
        return vocabulary

    def build_model(self, cfg, data, assets):
        return build_captioner(cfg, len(assets), data.clip_shape)

    def loss(self, cfg):
        return MaskedCrossEntropy(PAD_ID, cfg["train"]["label_smoothing"])

    def metrics(self, cfg):
        return [Perplexity(mask_id=PAD_ID)]

    def datasets(self, cfg, data, assets):
        return pipeline.training_datasets(cfg, data, assets)

    # ----------------------------------------------------------------------------------------- inference
    def inference(self, cfg, run, options):
        vocabulary = Vocabulary.from_json(run.load_json(VOCABULARY_FILE))
        return Captioner(run.load_model(), vocabulary.words, cfg, beam_size=options.get("beam"))

    def score(self, cfg, module, data, split, run):
        """Captions of the split's clips (captions-SPLIT.tsv in the run dir), their COCO scores, and the scores of
        the training split's most frequent caption given to every clip."""
        data_lib.read_arrays(cfg, data, split, tail=module.array_tail, recorded=run.metadata())
        clips = sorted(data.arrays[split])
        references = {c: data.references(split)[c] for c in clips}
        start = time.perf_counter()
        hypotheses, scores = module.caption_arrays([data.arrays[split][c] for c in clips])
        seconds = time.perf_counter() - start
        config_lib.write_atomic(run / f"captions-{split}.tsv",
                                "".join(f"{c}\t{h}\t{s}\n" for c, h, s in zip(clips, hypotheses, scores)))
        train_split = cfg["data"]["train_split"]
        baseline = most_frequent_caption(data_lib.read_captions(data.folder, (train_split,)).references[train_split])
        return {"split": split, **coco_scores(dict(zip(clips, hypotheses)), references), "clips": len(clips),
                "beam_size": module.beam_size, "clips_per_second": round(len(clips) / seconds, 2),
                "distinct_captions": len(set(hypotheses)),
                "baseline": {"caption": baseline, **coco_scores({c: baseline for c in clips}, references)}}

    def predict(self, signatures, info, inputs, options, module=None):
        """A .npy features file goes to serving_default, a video's sampled frames to the frames signature."""
        for path in check_inputs(inputs):
            if path.suffix == ".npy":
                features = features_lib.load_features(path, tail=(info["feature_dim"],))
                outputs = signatures["serving_default"](features=tf.constant(features[None]))
            elif "frames" not in signatures:
                raise ConfigError(f"{path}: this {'export' if module is None else 'run'} has no frames signature (its "
                                  f"backbone's weights were not available); give a .npy features file")
            else:
                if module is not None:  # a frozen backbone is built now, outside the graph (or names its weights)
                    module.frame_encoder
                frames = read_frames(path, info["num_frames"], size=tuple(info["frame_shape"][:2]))
                outputs = signatures["frames"](frames=tf.constant(frames[None]))
            yield {"input": str(path), "caption": outputs["caption"].numpy()[0].decode("utf-8"),
                   "score": round(float(outputs["score"].numpy()[0]), 4)}


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
