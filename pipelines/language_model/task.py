"""The language-model task's parts: word-level LSTM LM, perplexity, generation and scoring."""
import math
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from lstm_apps import distribute
from lstm_apps.config import require_positive
from lstm_apps.errors import ConfigError, DataError
from lstm_apps.inputs.text import UNK_ID, Vocabulary, read_corpus, read_lines, stream
from lstm_apps.metrics import Perplexity
from lstm_apps.tasks import Task
from pipelines.language_model import data as data_lib
from pipelines.language_model import pipeline
from pipelines.language_model.inference import (TextModel, lowercase_inputs, perplexity_metrics,
                                                stream_log_likelihood)
from pipelines.language_model.model import ResetStates, build_network, inference_network, set_output_bias

VOCABULARY_FILE = "vocabulary.json"


class LanguageModelTask(Task):
    name = "language-model"
    presets_dir = Path(__file__).parent / "presets"
    renamed_keys = {"model.tie_weights": "model.tie_embeddings"}  # translation's name for the same switch
    prepared_splits = pipeline.TRAINING_SPLITS  # evaluation scores the stream of its split

    # ----------------------------------------------------------------------------------------- data
    def check_config(self, cfg):
        require_positive(cfg, "train.batch_size", "train.bptt", "train.epochs")

    def download(self, cfg):
        return data_lib.download(cfg["data"]["dataset"])

    def read_data(self, cfg, data_dir, splits):
        data = data_lib.load(cfg, data_dir, splits)
        if set(pipeline.TRAINING_SPLITS) <= set(splits):  # training: too-small splits fail before the run dir
            pipeline.check_windows(cfg, data)
        return data

    def prepare_data(self, cfg, data, cache_dir, splits, progress=None):
        return pipeline.prepare_splits(data, cfg, cache_dir, splits, progress)

    # ----------------------------------------------------------------------------------------- train
    def prepare_run(self, cfg, data, run):
        """The run's vocabulary (the assets): the training split's, written to vocabulary.json on the first
        session; a resumed run keeps the one it saved."""
        if (run / VOCABULARY_FILE).exists():
            vocabulary = Vocabulary.from_json(run.load_json(VOCABULARY_FILE))
            if data.prepared and vocabulary.words != data.vocabulary.words:
                raise DataError(f"{run / VOCABULARY_FILE}: the training split's vocabulary changed since this run "
                                "started, and data.cache holds windows of the new one: resume without data.cache, "
                                "or start a new run")
        else:
            vocabulary = data.vocabulary
            run.save_json(VOCABULARY_FILE, vocabulary.to_json())
        oov = {split: data.encode(split, vocabulary)[1] for split in data.tokens}
        print(f"vocabulary: {len(vocabulary)} ids; out-of-vocabulary tokens: "
              + ", ".join(f"{split} {count}" for split, count in oov.items()), flush=True)
        return vocabulary

    def build_model(self, cfg, data, assets):
        """The stateful training network, its output bias started at the training split's unigram log
        probabilities. Under a strategy each replica's network holds its share of the batch's rows (and their
        carried states), so train.batch_size must divide by the replicas."""
        vocab_size = len(assets)
        batch_size, replicas = cfg["train"]["batch_size"], distribute.replicas()
        if batch_size % replicas:
            raise ConfigError(f"train.batch_size: {batch_size} rows do not divide by the {replicas} replicas; the "
                              "language model carries every row's LSTM state on one replica")
        model = build_network(cfg, vocab_size, batch_size=batch_size // replicas, stateful=True)
        set_output_bias(model, pipeline.unigram_log_probs(data.encode("train", assets)[0], vocab_size))
        return model

    def loss(self, cfg):
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def metrics(self, cfg):
        return [Perplexity()]

    def datasets(self, cfg, data, assets):
        return pipeline.training_datasets(cfg, data, assets)

    def callbacks(self, cfg):
        return [ResetStates()]  # the carried LSTM states start at zero in every epoch and validation pass

    # ----------------------------------------------------------------------------------------- inference
    def inference(self, cfg, run, options):
        """The stateless twin of the trained network; top_k, top_p and seed (fixed in the graph) from `options`
        over generate.*."""
        vocabulary = Vocabulary.from_json(run.load_json(VOCABULARY_FILE))
        network = inference_network(cfg, run.load_model())
        gen = cfg["generate"]
        return TextModel(network, vocabulary, lowercase_inputs(cfg["data"]["lowercase"], vocabulary),
                         max_tokens=gen["max_tokens"], temperature=gen["temperature"],
                         top_k=_option(options, "top_k", gen["top_k"]), top_p=_option(options, "top_p", gen["top_p"]),
                         seed=_option(options, "seed", gen["seed"]))

    def score(self, cfg, module, data, split, run):
        ids, oov_tokens = data.encode(split, module.vocabulary)
        return perplexity_metrics(module.network, ids, oov_tokens, split)

    def predict(self, signatures, info, inputs, options, module=None):
        """--score FILE first (from a run dir: one stream, the state carried; from an export: sentence by sentence
        through `score`), then one generation per prompt."""
        scoring = bool(options.get("score"))
        if scoring:
            path = options["score"]
            yield score_stream(module, path) if module is not None else score_sentences(signatures, path)
        vocabulary = module.vocabulary if module is not None else Vocabulary(info["vocabulary"])
        for prompt in check_prompts(inputs, vocabulary, info["lowercase"], scoring):
            result = signatures["serving_default"](
                prompt=tf.constant([prompt]),
                max_tokens=tf.constant([_option(options, "max_tokens", info["max_tokens"])], tf.int32),
                temperature=tf.constant([_option(options, "temperature", info["temperature"])], tf.float32))
            yield {"input": prompt, "continuation": result["continuation"].numpy()[0].decode("utf-8"),
                   "tokens": int(result["tokens"].numpy()[0])}


def score_stream(module, path):
    """A text file's perplexity as one token stream (<eos> after every line), the LSTM state carried."""
    ids, oov = module.vocabulary.encode(read_corpus(path, module.lowercase))
    log_likelihood, tokens = stream_log_likelihood(module.network, stream(ids))
    return {"input": str(path), "perplexity": math.exp(-log_likelihood / tokens),
            "log_probability": log_likelihood, "tokens": tokens, "oov_tokens": oov}


def score_sentences(signatures, path):
    """A text file's perplexity from the exported `score` signature: each non-empty line a sentence on its own."""
    lines = [line for line in read_lines(path) if line.strip()]
    if not lines:
        raise DataError(f"{path}: empty corpus (no words); expected one whitespace-tokenized sentence per line")
    scores = signatures["score"](text=tf.constant(lines))
    log_probability = float(np.sum(scores["log_probability"].numpy()))
    tokens = int(np.sum(scores["tokens"].numpy()))
    return {"input": str(path), "perplexity": math.exp(-log_probability / tokens),
            "log_probability": log_probability, "tokens": tokens, "context": "sentence"}


def check_prompts(prompts, vocabulary, lowercase, scoring=False):
    """The prompts, checked before any is answered: one made only of out-of-vocabulary words is an error (the
    model would only see <unk>)."""
    if not prompts and not scoring:
        raise ConfigError("predict: expected at least one prompt (or --score FILE)")
    for prompt in prompts:
        words = (prompt.lower() if lowercase else prompt).split()
        if words and all(vocabulary.ids.get(word, UNK_ID) == UNK_ID for word in words):
            raise DataError(f"prompt {prompt!r}: every word is out of the vocabulary ({len(vocabulary)} words); "
                            f"expected at least one known word")
    return list(prompts)


def _option(options, key, default):
    value = options.get(key)
    return default if value is None else value


TASK = LanguageModelTask()
