"""The language-model inference module: a trained network with its vocabulary; perplexity of a token stream (the
state carried), and generation and scoring on raw strings in TF ops (the exported signatures)."""
import math
import time

import numpy as np
import tensorflow as tf

from lstm_apps import decoding
from lstm_apps.inputs.text import EOS_ID, PAD_ID, stream
from pipelines.language_model.model import zero_states

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


def lowercase_inputs(lowercase, vocabulary):
    """Lowercase prompts and scored text when the corpus was lowercased or has no capitals at all (PTB)."""
    return lowercase or not any(word != word.lower() for word in vocabulary.words)


# --------------------------------------------------------------------------------------------- text in the graph
class TextModel(tf.Module):
    """A trained (inference) network and its vocabulary: serves `evaluate` (`network`, `vocabulary`),
    `predict --run-dir` and the exported SavedModel (generation and scoring on raw strings, all in TF ops: word
    lookup, sampling loop).

    serving_default: prompt string[batch], max_tokens int32[batch], temperature float32[batch] -> continuation
    string[batch], tokens int32[batch]; score: text string[batch] -> log_probability, tokens, perplexity [batch].
    `generate` holds the generation defaults (max_tokens, temperature, top_k, top_p, seed); top_k, top_p and seed
    are fixed in the graph.
    """

    def __init__(self, network, vocabulary, lowercase, max_tokens=20, temperature=0.8, top_k=0, top_p=1.0, seed=0):
        super().__init__()
        self.network = network
        self.vocabulary = vocabulary
        self.lookup = vocabulary.lookup()
        self.words = tf.constant(vocabulary.words)
        self.lowercase = lowercase
        self.max_tokens, self.temperature = max_tokens, temperature
        self.top_k, self.top_p, self.seed = top_k, top_p, seed

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

    def warmup_inputs(self):
        return {
            "serving_default": {"prompt": np.array([b"the"], object), "max_tokens": np.array([3], np.int32),
                                "temperature": np.array([0.0], np.float32)},
            "score": {"text": np.array([b"the"], object)},
        }

    def serving_info(self):
        """What `predict --model` needs besides the signatures (the keys the previous release wrote too)."""
        return {"task": "language-model", "lowercase": bool(self.lowercase), "max_tokens": self.max_tokens,
                "temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p, "seed": self.seed,
                "vocabulary": list(self.vocabulary.words)}

    def trackables(self):
        return [self.network, self.lookup.lookup_table]
