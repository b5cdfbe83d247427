"""The translation task: SentencePiece in the graph, a bidirectional LSTM encoder-decoder with Luong attention,
greedy and beam search (`lstm_apps.decoding`), sacreBLEU BLEU and chrF."""
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
import yaml

from lstm_apps import decoding
from lstm_apps import export as export_lib
from lstm_apps import training
from lstm_apps.config import require_positive, split_name
from lstm_apps.errors import ConfigError, DataError
from lstm_apps.inputs.subwords import (BOS_ID, EOS_ID, PAD_ID, SubwordTokenizer, read_sentencepiece,
                                       train_sentencepiece)
from lstm_apps.losses import MaskedCrossEntropy
from lstm_apps.metrics import Perplexity
from lstm_apps.tasks import Task
from pipelines.translation import data as data_lib
from pipelines.translation.model import build_translator, parts

SUBWORD_FILES = {"source": "source.model", "target": "target.model"}
EXPORT_INFO = Path("assets.extra") / "lstm_apps.yaml"
WARMUP = {"serving_default": {"text": np.array([b"A dog runs on the grass."], object)}}


# --------------------------------------------------------------------------------------------- input pipeline
def bucket_boundaries(max_length, width):
    """[width + 1, 2 * width + 1, ...] up to the first above max_length: bucket i is padded to i * width tokens,
    so every batch has one of a few fixed lengths (no retracing for every new length, tensorflow#29075)."""
    return list(range(width + 1, max_length + width + 1, width))


def encode_pairs(pairs, source_tokenizer, target_tokenizer, max_length):
    """Subword ids of the pairs whose sides both fit in `max_length` tokens (the end/start id included):
    (source ragged, target ragged, pairs dropped for length)."""
    source = source_tokenizer.tokenize(tf.constant([s for s, _ in pairs]))
    target = target_tokenizer.tokenize(tf.constant([t for _, t in pairs]))
    keep = (source.row_lengths() + 1 <= max_length) & (target.row_lengths() + 1 <= max_length)
    return (tf.ragged.boolean_mask(source, keep), tf.ragged.boolean_mask(target, keep),
            int(len(pairs) - tf.reduce_sum(tf.cast(keep, tf.int32))))


def batches(source, target, train_cfg, max_length, shuffle):
    """((source + <eos>, <bos> + target), target + <eos>) batches, bucketed by length, right-padded to the bucket
    boundary, about `train.batch_tokens` tokens (padding included) per batch."""
    def example(source, target):
        return ((tf.concat([source, [EOS_ID]], 0), tf.concat([[BOS_ID], target], 0)),
                tf.concat([target, [EOS_ID]], 0))

    boundaries = bucket_boundaries(max_length, train_cfg["bucket_width"])
    sizes = [max(1, train_cfg["batch_tokens"] // (boundary - 1)) for boundary in boundaries] + [1]
    # the number of batches is known (each bucket's sentences / its batch size, rounded up): tell Keras, so the
    # progress bar has an end and the last batch is not read as "input ran out of data"
    lengths = np.maximum(source.row_lengths().numpy(), target.row_lengths().numpy()) + 1
    per_bucket = np.bincount(np.searchsorted(boundaries, lengths, side="right"), minlength=len(sizes))
    count = int(sum(-(-n // size) for n, size in zip(per_bucket, sizes)))
    ds = tf.data.Dataset.from_tensor_slices((source, target))
    if shuffle:
        ds = ds.shuffle(int(source.nrows()), seed=train_cfg["seed"], reshuffle_each_iteration=True)
    return (ds.map(example, num_parallel_calls=tf.data.AUTOTUNE)
            .bucket_by_sequence_length(lambda inputs, _: tf.maximum(tf.shape(inputs[0])[0], tf.shape(inputs[1])[0]),
                                       boundaries, sizes, pad_to_bucket_boundary=True)
            .apply(tf.data.experimental.assert_cardinality(count))
            .prefetch(tf.data.AUTOTUNE))


# --------------------------------------------------------------------------------------------- text in the graph
class TextTranslator(tf.Module):
    """Raw strings in, raw strings out, all TF ops (SentencePiece, encoder, beam search, detokenization): the same
    object serves `evaluate`, `predict --run-dir` and the exported SavedModel."""

    def __init__(self, translator, source_tokenizer, target_tokenizer, decode_cfg):
        super().__init__()
        self.encoder, self.decoder = parts(translator)
        self.source_tokenizer, self.target_tokenizer = source_tokenizer, target_tokenizer
        self.max_source_length = decode_cfg["max_source_length"]
        self.length_ratio, self.length_offset = decode_cfg["max_length_ratio"], decode_cfg["max_length_offset"]
        self.alpha = decode_cfg["length_penalty"]
        self.beam_size = decode_cfg["beam_size"]
        self._graphs = {}

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

    def translate_graph(self, beam_size):
        """`translate` as a tf.function for one beam size (traced once per size)."""
        if beam_size not in self._graphs:
            self._graphs[beam_size] = tf.function(lambda text: self.translate(text, beam_size),
                                                  input_signature=[tf.TensorSpec([None], tf.string)])
        return self._graphs[beam_size]

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


def translate_all(model, sentences, beam_size, batch_size=64):
    """Translations and scores of many sentences, batched by similar length (then put back in order)."""
    order = np.argsort([len(s) for s in sentences], kind="stable")
    graph = model.translate_graph(beam_size)
    translations, scores = [None] * len(sentences), np.zeros(len(sentences), np.float32)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        outputs = graph(tf.constant([sentences[i] for i in chunk]))
        for index, text, score in zip(chunk, outputs["translation"].numpy(), outputs["score"].numpy()):
            translations[index], scores[index] = text.decode("utf-8"), float(score)
    return translations, scores


def corpus_scores(hypotheses, references):
    """sacreBLEU corpus BLEU (cased, detokenized: the WMT convention), chrF, and lowercased BLEU, with signatures."""
    import sacrebleu

    bleu, chrf, bleu_lower = sacrebleu.BLEU(), sacrebleu.CHRF(), sacrebleu.BLEU(lowercase=True)
    scores = {"bleu": bleu.corpus_score(hypotheses, [references]),
              "chrf": chrf.corpus_score(hypotheses, [references]),
              "bleu_lowercase": bleu_lower.corpus_score(hypotheses, [references])}
    result = {name: round(float(score.score), 2) for name, score in scores.items()}
    result["signatures"] = {"bleu": str(bleu.get_signature()), "chrf": str(chrf.get_signature()),
                            "bleu_lowercase": str(bleu_lower.get_signature())}
    return result


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


# --------------------------------------------------------------------------------------------- the task
class TranslationTask(Task):
    name = "translation"
    presets_dir = Path(__file__).parent / "presets"

    def load_data(self, cfg):
        train_cfg = cfg["train"]
        require_positive(cfg, "train.batch_tokens", "train.bucket_width", "train.epochs")
        if train_cfg["batch_tokens"] < cfg["data"]["max_length"]:
            raise ConfigError(f"train.batch_tokens: {train_cfg['batch_tokens']} is smaller than data.max_length "
                              f"{cfg['data']['max_length']}; expected room for at least one sentence")
        training.make_optimizer(train_cfg["optimizer"], train_cfg["learning_rate"])  # a bad name fails early
        data_cfg = cfg["data"]
        return data_lib.load(cfg, (data_cfg["train_split"], data_cfg["valid_split"]))

    def _tokenizers(self, cfg, run_dir, data=None):
        """The run's SentencePiece models, trained on the training split on first use (kept for resuming)."""
        tokenizers = []
        for side, index in (("source", 0), ("target", 1)):
            path = Path(run_dir) / SUBWORD_FILES[side]
            if path.exists() or data is None:
                proto = read_sentencepiece(path)
            else:
                sentences = [pair[index] for pair in data.pairs[cfg["data"]["train_split"]]]
                proto = train_sentencepiece(sentences, path, cfg["tokenizer"][f"{side}_vocab"],
                                            cfg["tokenizer"]["model_type"])
            tokenizers.append(SubwordTokenizer(proto))
        return tokenizers

    def train(self, cfg, data, run_dir):
        data_cfg, train_cfg = cfg["data"], cfg["train"]
        source_tokenizer, target_tokenizer = self._tokenizers(cfg, run_dir, data)
        datasets = []
        for split, shuffle in ((data_cfg["train_split"], True), (data_cfg["valid_split"], False)):
            source, target, too_long = encode_pairs(data.pairs[split], source_tokenizer, target_tokenizer,
                                                    data_cfg["max_length"])
            if source.nrows() == 0:
                raise DataError(f"{data.files[split][0]}: every pair is longer than data.max_length "
                                f"{data_cfg['max_length']} subword tokens")
            print(f"{split}: {int(source.nrows())} pairs ({too_long} longer than {data_cfg['max_length']} "
                  f"subword tokens and {data.dropped[split]} with an empty side left out)", flush=True)
            datasets.append(batches(source, target, train_cfg, data_cfg["max_length"], shuffle))
        print(f"subword vocabularies: source {source_tokenizer.vocab_size}, target {target_tokenizer.vocab_size}")
        translator = build_translator(cfg, source_tokenizer.vocab_size, target_tokenizer.vocab_size)
        translator.compile(optimizer=training.make_optimizer(train_cfg["optimizer"], train_cfg["learning_rate"],
                                                             train_cfg["clipnorm"]),
                           loss=MaskedCrossEntropy(PAD_ID, train_cfg["label_smoothing"]),
                           metrics=[Perplexity(mask_id=PAD_ID)])
        translator.summary(print_fn=lambda line, **_: print(line))
        training.fit(translator, *datasets, run_dir, train_cfg)

    def text_translator(self, cfg, run_dir):
        source_tokenizer, target_tokenizer = self._tokenizers(cfg, run_dir)
        return TextTranslator(training.load_model(run_dir), source_tokenizer, target_tokenizer, cfg["decode"])

    def evaluate(self, cfg, run_dir, split):
        split = split_name(cfg, split)
        model = self.text_translator(cfg, run_dir)
        data = data_lib.load(cfg, (split,))
        sources, references = zip(*data.pairs[split])
        start = time.perf_counter()
        hypotheses, _ = translate_all(model, list(sources), model.beam_size)
        seconds = time.perf_counter() - start
        metrics = {"split": split, **corpus_scores(hypotheses, list(references)), "sentences": len(sources),
                   "beam_size": model.beam_size, "sentences_per_second": round(len(sources) / seconds, 2)}
        if model.beam_size > 1:  # the same model decoded greedily, to show what the beam adds
            greedy = corpus_scores(translate_all(model, list(sources), 1)[0], list(references))
            metrics["greedy"] = {key: greedy[key] for key in ("bleu", "chrf", "bleu_lowercase")}
        return metrics

    def predict(self, cfg, inputs, run_dir, options=None):
        options = options or {}
        model = self.text_translator(cfg, run_dir)
        sentences = check_sentences(inputs, model.source_tokenizer, model.max_source_length)
        beam = model.beam_size if options.get("beam") is None else options["beam"]
        if beam < 1:
            raise ConfigError(f"--beam {beam}: expected a positive integer")
        outputs = model.translate_graph(beam)(tf.constant(sentences))
        if options.get("attention"):
            tokens = outputs["tokens"].numpy()[0][: int(outputs["lengths"].numpy()[0])]
            plot_attention(*model.attention(sentences[0], tokens), options["attention"])
        for sentence, text, score in zip(sentences, outputs["translation"].numpy(), outputs["score"].numpy()):
            yield {"input": sentence, "translation": text.decode("utf-8"), "score": round(float(score), 4)}

    def predict_saved_model(self, saved_model_dir, inputs, options=None):
        import tensorflow_text  # noqa: F401  registers the SentencePiece ops the SavedModel uses

        options = options or {}
        info = yaml.safe_load((saved_model_dir / EXPORT_INFO).read_text(encoding="utf-8"))
        for flag in ("beam", "attention"):
            if options.get(flag):
                raise ConfigError(f"--{flag}: not available with --model (the export decodes with beam "
                                  f"{info['beam_size']}); use --run-dir")
        serving = tf.saved_model.load(str(saved_model_dir)).signatures["serving_default"]
        sentences = check_sentences(inputs, None, info["max_source_length"])
        outputs = serving(text=tf.constant(sentences))
        for sentence, text, score in zip(sentences, outputs["translation"].numpy(), outputs["score"].numpy()):
            yield {"input": sentence, "translation": text.decode("utf-8"), "score": round(float(score), 4)}

    def export(self, cfg, run_dir, export_dir):
        model = self.text_translator(cfg, run_dir)
        trackables = [model.encoder, model.decoder, model.source_tokenizer.tokenizer, model.target_tokenizer.tokenizer]
        endpoints = {"serving_default": (model.serve, [tf.TensorSpec([None], tf.string, name="text")])}
        path = export_lib.write_saved_model(export_dir, trackables, endpoints, WARMUP, model_name="translation")
        (path / EXPORT_INFO).write_text(yaml.safe_dump({
            "task": self.name, "source_lang": cfg["data"]["source_lang"], "target_lang": cfg["data"]["target_lang"],
            "beam_size": model.beam_size, "length_penalty": model.alpha,
            "max_source_length": model.max_source_length}))
        return path


def check_sentences(inputs, source_tokenizer, max_source_length):
    """The sentences to translate (arguments, or stdin lines when there are none or one is "-"). An empty one is an
    error; one longer than the model's limit is translated from its first max_source_length - 1 pieces, with a
    warning on stderr."""
    if not inputs or list(inputs) == ["-"]:
        inputs = sys.stdin.read().splitlines()
    if not inputs:
        raise ConfigError("predict: expected at least one sentence (as arguments or on stdin)")
    for index, sentence in enumerate(inputs, start=1):
        if not sentence.strip():
            raise DataError(f"input {index}: empty sentence; expected text to translate")
    if source_tokenizer is not None:
        lengths = source_tokenizer.tokenize(tf.constant(list(inputs))).row_lengths().numpy()
        for index, length in enumerate(lengths, start=1):
            if length > max_source_length - 1:
                print(f"warning: input {index}: {length} subword tokens, truncated to the model's limit of "
                      f"{max_source_length - 1} (decode.max_source_length)", file=sys.stderr)
    return [sentence.strip() for sentence in inputs]



TASK = TranslationTask()
