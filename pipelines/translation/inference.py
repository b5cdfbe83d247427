"""The translation inference module: raw strings in, raw strings out, all TF ops (SentencePiece, encoder, greedy or
beam search, detokenization). One object serves `evaluate`, `predict --run-dir` and the exported SavedModel."""
from pathlib import Path

import numpy as np
import tensorflow as tf

from lstm_apps import decoding
from lstm_apps.inputs.subwords import BOS_ID, EOS_ID, PAD_ID
from pipelines.translation.model import parts

WARMUP_TEXT = np.array([b"A dog runs on the grass."], object)


class TextTranslator(tf.Module):
    """A trained translator with its two SentencePiece models and decoding settings.

    serving_default: text string[batch] -> translation string[batch], score float32[batch] (decoded with
    `beam_size`: decode.beam_size, or predict's --beam). `translate_graph(beam)` is the whole decoding (also tokens
    and lengths) as one tf.function per beam size; `attention` gives the heat map of one sentence.
    """

    def __init__(self, translator, source_tokenizer, target_tokenizer, decode_cfg, beam_size=None,
                 languages=(None, None)):
        super().__init__()
        self.encoder, self.decoder = parts(translator)
        self.source_tokenizer, self.target_tokenizer = source_tokenizer, target_tokenizer
        self.max_source_length = decode_cfg["max_source_length"]
        self.length_ratio, self.length_offset = decode_cfg["max_length_ratio"], decode_cfg["max_length_offset"]
        self.alpha = decode_cfg["length_penalty"]
        self.beam_size = beam_size or decode_cfg["beam_size"]
        self.source_lang, self.target_lang = languages
        self.translate_graph = decoding.GraphPerBeamSize(self.translate, [tf.TensorSpec([None], tf.string)])

    def source_ids(self, text):
        """string[batch] -> int32[batch, s]: subword ids truncated to max_source_length, then <eos>, right-padded."""
        ids = self.source_tokenizer.tokenize(text)[:, : self.max_source_length - 1]
        eos = tf.RaggedTensor.from_tensor(tf.fill([ids.nrows(), 1], EOS_ID))
        return tf.concat([ids, eos], axis=1).to_tensor(default_value=PAD_ID)

    def encode(self, source):
        memory, *states = self.encoder(source, training=False)
        memory = tf.identity(memory)  # drop the Keras mask: the decoder takes memory_mask explicitly
        return memory, tf.not_equal(source, PAD_ID), states

    def translate(self, text, beam_size):
        """text string[batch] -> translation string[batch], score float32[batch] (log-probability of the
        translation and its end / GNMT length penalty), tokens int32[batch, steps], lengths int32[batch]."""
        source = self.source_ids(text)
        memory, mask, states = self.encode(source)
        source_lengths = tf.reduce_sum(tf.cast(mask, tf.float32), axis=1)
        max_lengths = tf.cast(tf.math.ceil(self.length_ratio * source_lengths + self.length_offset), tf.int32)
        batch = tf.shape(source)[0]
        greedy = self.greedy(source, memory, mask, states, max_lengths)
        if beam_size == 1:
            tokens, lengths, scores = greedy
        else:  # beam search, but never a lower score than greedy (it can prune the greedy prefix on the way)
            tiled = [decoding.tile_beams(t, beam_size) for t in (memory, mask, *states)]
            beam = decoding.beam_search(self.step_fn(*tiled[:2]), tiled[2:], batch, beam_size, BOS_ID, EOS_ID,
                                        max_lengths, alpha=self.alpha, banned_ids=(PAD_ID, BOS_ID))
            # a greedy row cut at its maximum length has no end-token term in its score: it may not win
            cut = greedy[1] >= max_lengths
            tokens, lengths, scores = decoding.keep_better(beam, (*greedy[:2], tf.where(cut, decoding.NEG_INF,
                                                                                        greedy[2])))
        translation = self.target_tokenizer.detokenize(tf.RaggedTensor.from_tensor(tokens, lengths=lengths))
        return {"translation": translation, "score": scores, "tokens": tokens, "lengths": lengths}

    def step_fn(self, memory, mask):
        """One decoder step over `memory` (a `decoding` step function)."""
        def step(tokens, states):
            logits, _, *states = self.decoder([tokens, memory, mask, *states], training=False)
            return logits[:, -1], states
        return step

    def greedy(self, source, memory, mask, states, max_lengths):
        """Greedy decoding: (tokens, lengths, scores under the same length penalty as beam search)."""
        tokens, lengths, log_probs = decoding.greedy_search(self.step_fn(memory, mask), states, tf.shape(source)[0],
                                                            BOS_ID, EOS_ID, max_lengths, banned_ids=(PAD_ID, BOS_ID))
        return tokens, lengths, log_probs / decoding.gnmt_length_penalty(lengths + 1, self.alpha)

    def serve(self, text):
        outputs = self.translate(text, self.beam_size)
        return {"translation": outputs["translation"], "score": outputs["score"]}

    def attention(self, text, tokens):
        """Attention weights [t + 1, s] of one sentence for its translation `tokens` (teacher-forced), and the
        source and target pieces that label the axes."""
        source = self.source_ids(tf.constant([text]))
        memory, mask, states = self.encode(source)
        target = tf.constant([[BOS_ID, *tokens]], tf.int32)
        _, weights, *_ = self.decoder([target, memory, mask, *states], training=False)
        pieces = lambda tokenizer, ids: [p.decode("utf-8") for p in tokenizer.tokenizer.id_to_string(ids).numpy()]  # noqa: E731
        return (weights.numpy()[0], pieces(self.source_tokenizer, source[0]),
                pieces(self.target_tokenizer, tf.constant([*tokens, EOS_ID])))

    # ----------------------------------------------------------------------------------------- serving
    def endpoints(self):
        return {"serving_default": (self.serve, [tf.TensorSpec([None], tf.string, name="text")])}

    def warmup_inputs(self):
        return {"serving_default": {"text": WARMUP_TEXT}}

    def serving_info(self):
        return {"task": "translation", "source_lang": self.source_lang, "target_lang": self.target_lang,
                "beam_size": self.beam_size, "length_penalty": self.alpha,
                "max_source_length": self.max_source_length}

    def trackables(self):
        return [self.encoder, self.decoder, self.source_tokenizer.tokenizer, self.target_tokenizer.tokenizer]


def translate_all(module, sentences, beam_size, batch_size=64):
    """Translations and scores of many sentences, batched by similar length (then put back in order)."""
    order = np.argsort([len(s) for s in sentences], kind="stable")
    graph = module.translate_graph(beam_size)
    translations, scores = [None] * len(sentences), np.zeros(len(sentences), np.float32)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        outputs = graph(tf.constant([sentences[i] for i in chunk]))
        for index, text, score in zip(chunk, outputs["translation"].numpy(), outputs["score"].numpy()):
            translations[index], scores[index] = text.decode("utf-8"), float(score)
    return translations, scores


def plot_attention(weights, source_pieces, target_pieces, path):
    """Heat map of one sentence's attention (rows: target pieces, columns: source pieces), drawn on a bare Figure."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(4, 0.45 * len(source_pieces) + 1.5), max(3, 0.4 * len(target_pieces) + 1.5)))
    ax = fig.subplots()
    ax.imshow(weights, cmap="viridis", aspect="auto", vmin=0, vmax=1)
    ax.set_xticks(range(len(source_pieces)), source_pieces, rotation=90)
    ax.set_yticks(range(len(target_pieces)), target_pieces)
    ax.set_xlabel("source")
    ax.set_ylabel("translation")
    fig.tight_layout()
    tmp = Path(path).with_name(f".{Path(path).name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    tmp.replace(path)
