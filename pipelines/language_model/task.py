"""The language-model task: word-level LSTM LM, perplexity, generation and scoring."""
import math
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
import yaml

from lstm_apps import decoding
from lstm_apps import export as export_lib
from lstm_apps import training
from lstm_apps.config import require_positive
from lstm_apps.errors import ConfigError, DataError
from lstm_apps.inputs.text import (EOS_ID, PAD_ID, UNK_ID, Vocabulary, bptt_dataset, bptt_windows, read_corpus,
                                   read_lines, stream)
from lstm_apps.metrics import Perplexity
from lstm_apps.tasks import Task
from pipelines.language_model import data as data_lib
from pipelines.language_model.model import (ResetStates, build_network, inference_network, set_output_bias,
                                            zero_states)

VOCABULARY_FILE = "vocabulary.json"
EXPORT_INFO = Path("assets.extra") / "lstm_apps.yaml"
EVAL_WINDOW = 200  # tokens per call when scoring a stream (the state carries over, so only speed depends on it)


# --------------------------------------------------------------------------------------------- scoring a stream
def stream_log_likelihood(network, token_stream, window=EVAL_WINDOW):
    """(sum of log p(token | everything before it), number of targets) over a whole stream, batch 1, the LSTM
    state carried from window to window: every token after the first is a target exactly once."""
    step = _window_step(network)
    states = zero_states(network, 1)
    total, count = 0.0, 0
    for start in range(0, len(token_stream) - 1, window):
        inputs = token_stream[start:start + window][None]
        targets = token_stream[start + 1:start + window + 1][None]
        inputs = inputs[:, :targets.shape[1]]
        log_likelihood, states = step(tf.constant(inputs), tf.constant(targets), states)
        total += float(log_likelihood)
        count += targets.shape[1]
    return total, count


def _window_step(network):
    @tf.function(reduce_retracing=True)
    def step(inputs, targets, states):
        logits, *states = network([inputs, *states], training=False)
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
        return tf.reduce_sum(tf.gather(log_probs, targets, batch_dims=2)), states
    return step


def perplexity_metrics(network, ids, oov_tokens, split):
    start = time.perf_counter()
    log_likelihood, tokens = stream_log_likelihood(network, stream(ids))
    seconds = time.perf_counter() - start
    loss = -log_likelihood / tokens
    return {"split": split, "perplexity": math.exp(loss), "loss": loss, "tokens": tokens,
            "oov_tokens": int(oov_tokens), "tokens_per_second": round(tokens / seconds, 1)}


def unigram_log_probs(train_ids, vocab_size):
    """Add-one log unigram probabilities of the training stream (padding gets a tiny probability)."""
    counts = np.bincount(stream(train_ids)[1:], minlength=vocab_size).astype(np.float64) + 1.0
    counts[PAD_ID] = 1e-6
    return np.log(counts / counts.sum())


def unigram_perplexity(train_ids, ids, vocab_size):
    """Perplexity of the add-one unigram model of the training split on `ids` (the floor an LM must beat)."""
    return float(np.exp(-unigram_log_probs(train_ids, vocab_size)[stream(ids)[1:]].mean()))


# --------------------------------------------------------------------------------------------- text in the graph
class TextModel(tf.Module):
    """Generation and scoring on raw strings, all in TF ops (word lookup, sampling loop): the same object serves
    `predict --run-dir` and the exported SavedModel."""

    def __init__(self, network, vocabulary, lowercase, top_k=0, top_p=1.0, seed=0):
        super().__init__()
        self.network = network
        self.lookup = vocabulary.lookup()
        self.words = tf.constant(vocabulary.words)
        self.lowercase = lowercase
        self.top_k, self.top_p, self.seed = top_k, top_p, seed
        self.generate_graph = tf.function(self.generate, reduce_retracing=True)
        self.score_graph = tf.function(self.score, reduce_retracing=True)

    def word_ids(self, text):
        """string[batch] -> ragged int32 ids (whitespace-split words, unknown words -> <unk>)."""
        if self.lowercase:
            text = tf.strings.lower(text, encoding="utf-8")
        words = tf.strings.split(text)
        return words.with_flat_values(tf.cast(self.lookup(words.flat_values), tf.int32))

    def _with_eos(self, ids, first=True):
        eos = tf.fill([ids.nrows(), 1], EOS_ID)
        eos = tf.RaggedTensor.from_tensor(eos)
        return tf.concat([eos, ids] if first else [ids, eos], axis=1)

    def _run(self, ragged_inputs):
        """Padded forward pass: (logits [batch, time, vocab], final states, lengths)."""
        inputs = ragged_inputs.to_tensor(default_value=PAD_ID)
        lengths = tf.cast(ragged_inputs.row_lengths(), tf.int32)
        logits, *states = self.network([inputs, *zero_states(self.network, tf.shape(inputs)[0])], training=False)
        return tf.cast(logits, tf.float32), states, lengths

    def generate(self, prompt, max_tokens, temperature):
        """prompt string[batch], max_tokens int32[batch], temperature float32[batch] (0 = greedy) ->
        continuation string[batch] (stops at the end of the sentence), tokens int32[batch]."""
        logits, states, lengths = self._run(self._with_eos(self.word_ids(prompt)))
        last = tf.gather(logits, lengths - 1, batch_dims=1)

        def step(tokens, states):
            logits, *states = self.network([tokens, *states], training=False)
            return tf.cast(logits[:, -1], tf.float32), states

        tokens, counts, _ = decoding.sample_loop(step, last, states, max_tokens, temperature, end_id=EOS_ID,
                                              seed=self.seed, top_k=self.top_k, top_p=self.top_p,
                                              banned_ids=(PAD_ID,))
        words = tf.RaggedTensor.from_tensor(tf.gather(self.words, tokens), lengths=counts)
        return {"continuation": tf.strings.reduce_join(words, axis=1, separator=" "), "tokens": counts}

    def score(self, text):
        """text string[batch] -> log_probability float32[batch] (natural log of the sentence, its end
        included), tokens int32[batch] (words + 1 for the end), perplexity float32[batch]."""
        ids = self.word_ids(text)
        logits, _, lengths = self._run(self._with_eos(ids))
        targets = self._with_eos(ids, first=False).to_tensor(default_value=PAD_ID)
        log_probs = tf.gather(tf.nn.log_softmax(logits, axis=-1), targets, batch_dims=2)
        valid = tf.sequence_mask(lengths, tf.shape(targets)[1], dtype=tf.float32)
        total = tf.reduce_sum(log_probs * valid, axis=1)
        return {"log_probability": total, "tokens": lengths,
                "perplexity": tf.exp(-total / tf.cast(lengths, tf.float32))}

    def endpoints(self):
        return {
            "serving_default": (self.generate, [tf.TensorSpec([None], tf.string, name="prompt"),
                                                tf.TensorSpec([None], tf.int32, name="max_tokens"),
                                                tf.TensorSpec([None], tf.float32, name="temperature")]),
            "score": (self.score, [tf.TensorSpec([None], tf.string, name="text")]),
        }


WARMUP = {
    "serving_default": {"prompt": np.array([b"the"], object), "max_tokens": np.array([3], np.int32),
                        "temperature": np.array([0.0], np.float32)},
    "score": {"text": np.array([b"the"], object)},
}


# --------------------------------------------------------------------------------------------- the task
class LanguageModelTask(Task):
    name = "language-model"
    presets_dir = Path(__file__).parent / "presets"

    def load_data(self, cfg):
        train_cfg = cfg["train"]
        require_positive(cfg, "train.batch_size", "train.bptt", "train.epochs")
        training.make_optimizer(train_cfg["optimizer"], train_cfg["learning_rate"])  # a bad name fails early
        data = data_lib.load(cfg)
        for split in ("train", "valid"):  # too-small splits fail before the run dir is touched
            bptt_windows(stream(data.ids[split]), train_cfg["batch_size"], train_cfg["bptt"], data.files[split])
        return data

    def train(self, cfg, data, run_dir):
        train_cfg = cfg["train"]
        training.save_json_atomic(run_dir / VOCABULARY_FILE, data.vocabulary.to_json())
        print(f"vocabulary: {len(data.vocabulary)} ids; out-of-vocabulary tokens: "
              + ", ".join(f"{split} {count}" for split, count in data.oov_tokens.items()), flush=True)
        model = build_network(cfg, len(data.vocabulary), batch_size=train_cfg["batch_size"], stateful=True)
        set_output_bias(model, unigram_log_probs(data.ids["train"], len(data.vocabulary)))
        model.compile(optimizer=training.make_optimizer(train_cfg["optimizer"], train_cfg["learning_rate"],
                                                        train_cfg["clipnorm"]),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=[Perplexity()])
        model.summary(print_fn=lambda line, **_: print(line))
        windows = [bptt_dataset(stream(data.ids[split]), train_cfg["batch_size"], train_cfg["bptt"],
                                data.files[split]) for split in ("train", "valid")]
        training.fit(model, *windows, run_dir, train_cfg, extra_callbacks=[ResetStates()])

    def _load(self, cfg, run_dir):
        vocabulary = Vocabulary.from_json(training.load_json(run_dir / VOCABULARY_FILE))
        return vocabulary, inference_network(cfg, training.load_model(run_dir))

    def evaluate(self, cfg, run_dir, split):
        split = data_lib.split_name(split)
        vocabulary, network = self._load(cfg, run_dir)
        data = data_lib.load(cfg, vocabulary=vocabulary, splits=(split,))
        return perplexity_metrics(network, data.ids[split], data.oov_tokens[split], split)

    def text_model(self, cfg, run_dir, options):
        vocabulary, network = self._load(cfg, run_dir)
        gen = cfg["generate"]
        return vocabulary, TextModel(network, vocabulary, lowercase_inputs(cfg, vocabulary),
                                     top_k=_option(options, "top_k", gen["top_k"]),
                                     top_p=_option(options, "top_p", gen["top_p"]),
                                     seed=_option(options, "seed", gen["seed"]))

    def predict(self, cfg, inputs, run_dir, options=None):
        options = options or {}
        gen = cfg["generate"]
        vocabulary, model = self.text_model(cfg, run_dir, options)
        if options.get("score"):
            path = options["score"]
            ids, oov = vocabulary.encode(read_corpus(path, model.lowercase))
            log_likelihood, tokens = stream_log_likelihood(model.network, stream(ids))
            yield {"input": str(path), "perplexity": math.exp(-log_likelihood / tokens),
                   "log_probability": log_likelihood, "tokens": tokens, "oov_tokens": oov}
        for prompt in check_prompts(inputs, vocabulary, model.lowercase, bool(options.get("score"))):
            result = model.generate_graph(tf.constant([prompt]),
                                    tf.constant([_option(options, "max_tokens", gen["max_tokens"])]),
                                    tf.constant([float(_option(options, "temperature", gen["temperature"]))]))
            yield {"input": prompt, "continuation": result["continuation"].numpy()[0].decode("utf-8"),
                   "tokens": int(result["tokens"].numpy()[0])}

    def predict_saved_model(self, saved_model_dir, inputs, options=None):
        options = options or {}
        info = yaml.safe_load((saved_model_dir / EXPORT_INFO).read_text(encoding="utf-8"))
        signatures = tf.saved_model.load(str(saved_model_dir)).signatures
        baked = [name for name in ("top_k", "top_p", "seed") if options.get(name) is not None]
        if baked:
            raise ConfigError(f"--{baked[0].replace('_', '-')}: fixed when the model was exported "
                              f"({', '.join(f'{k}={info[k]}' for k in ('top_k', 'top_p', 'seed'))}); "
                              f"use --run-dir to change it")
        if options.get("score"):
            scores = signatures["score"](text=tf.constant(_nonempty_lines(options["score"])))
            log_probability = float(np.sum(scores["log_probability"].numpy()))
            tokens = int(np.sum(scores["tokens"].numpy()))
            yield {"input": str(options["score"]), "perplexity": math.exp(-log_probability / tokens),
                   "log_probability": log_probability, "tokens": tokens, "context": "sentence"}
        vocabulary = Vocabulary(info["vocabulary"])
        for prompt in check_prompts(inputs, vocabulary, info["lowercase"], bool(options.get("score"))):
            result = signatures["serving_default"](
                prompt=tf.constant([prompt]),
                max_tokens=tf.constant([_option(options, "max_tokens", info["max_tokens"])], tf.int32),
                temperature=tf.constant([_option(options, "temperature", info["temperature"])], tf.float32))
            yield {"input": prompt, "continuation": result["continuation"].numpy()[0].decode("utf-8"),
                   "tokens": int(result["tokens"].numpy()[0])}

    def export(self, cfg, run_dir, export_dir):
        vocabulary, model = self.text_model(cfg, run_dir, {})
        path = export_lib.write_saved_model(export_dir, [model.network, model.lookup.lookup_table], model.endpoints(), WARMUP,
                                            model_name="language_model")
        gen = cfg["generate"]
        (path / EXPORT_INFO).write_text(yaml.safe_dump({
            "task": self.name, "lowercase": model.lowercase, "max_tokens": gen["max_tokens"],
            "temperature": gen["temperature"], "top_k": gen["top_k"], "top_p": gen["top_p"], "seed": gen["seed"],
            "vocabulary": vocabulary.words}))
        return path


def lowercase_inputs(cfg, vocabulary):
    """Lowercase prompts and scored text when the corpus was lowercased or has no capitals at all (PTB)."""
    return cfg["data"]["lowercase"] or not any(word != word.lower() for word in vocabulary.words)


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


def _nonempty_lines(path):
    lines = [line for line in read_lines(path) if line.strip()]
    if not lines:
        raise DataError(f"{path}: empty corpus (no words); expected one whitespace-tokenized sentence per line")
    return lines


def _option(options, key, default):
    value = options.get(key)
    return default if value is None else value


TASK = LanguageModelTask()
