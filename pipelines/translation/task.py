"""The translation task's parts: SentencePiece in the graph, a bidirectional LSTM encoder-decoder with Luong
attention, greedy and beam search (`lstm_apps.decoding`), sacreBLEU BLEU and chrF."""
import sys
import time
from pathlib import Path

import tensorflow as tf

from lstm_apps import config as config_lib
from lstm_apps.errors import ConfigError, DataError
from lstm_apps.inputs.subwords import PAD_ID, SubwordTokenizer, read_sentencepiece, train_sentencepiece
from lstm_apps.losses import MaskedCrossEntropy
from lstm_apps.metrics import Perplexity
from lstm_apps.tasks import Task
from pipelines.translation import data as data_lib
from pipelines.translation.inference import TextTranslator, plot_attention, translate_all
from pipelines.translation.model import build_translator
from pipelines.translation.pipeline import STREAMED_SPLITS, SUBWORD_FILES, prepare_splits, split_batches


def read_tokenizers(run):
    """The run's two SentencePiece models, {"source", "target"} -> SubwordTokenizer."""
    return {side: SubwordTokenizer(read_sentencepiece(run / name)) for side, name in SUBWORD_FILES.items()}


class TranslationTask(Task):
    name = "translation"
    presets_dir = Path(__file__).parent / "presets"
    saved_model_imports = ("tensorflow_text",)  # registers the SentencePiece ops the SavedModel uses
    prepared_splits = STREAMED_SPLITS  # evaluation translates the text of its split

    # ----------------------------------------------------------------------------------------- data
    def check_config(self, cfg):
        train_cfg = cfg["train"]
        config_lib.require_positive(cfg, "train.batch_tokens", "train.bucket_width", "train.epochs")
        if train_cfg["batch_tokens"] < cfg["data"]["max_length"]:
            raise ConfigError(f"train.batch_tokens: {train_cfg['batch_tokens']} is smaller than data.max_length "
                              f"{cfg['data']['max_length']}; expected room for at least one sentence")

    def download(self, cfg):
        return data_lib.download(cfg["data"]["dataset"])

    def read_data(self, cfg, data_dir, splits):
        return data_lib.load(cfg, data_dir, splits)

    def prepare_data(self, cfg, data, cache_dir, splits, progress=None):
        return prepare_splits(data, cfg, cache_dir, splits, progress)

    # ----------------------------------------------------------------------------------------- train
    def prepare_run(self, cfg, data, run):
        """The SentencePiece models, trained on the training split in the first session (or copied from the
        prepared cache, whose shards hold their ids), read back when resuming."""
        tokenizers = {}
        for index, (side, name) in enumerate(SUBWORD_FILES.items()):
            cached = data.subwords / name if data.subwords else None
            if (run / name).exists():
                proto = read_sentencepiece(run / name)
                if cached and cached.read_bytes() != proto:
                    raise DataError(f"{cached}: not the subword model this run started with ({run / name}); the "
                                    "cache was rebuilt since: resume without data.cache, or start a new run")
            elif cached:
                proto = cached.read_bytes()
                run.save_bytes(name, proto)
            else:
                proto = train_sentencepiece([pair[index] for pair in data.pairs["train"]], run / name,
                                            cfg["tokenizer"][f"{side}_vocab"], cfg["tokenizer"]["model_type"])
            tokenizers[side] = SubwordTokenizer(proto)
        print(f"subword vocabularies: source {tokenizers['source'].vocab_size}, "
              f"target {tokenizers['target'].vocab_size}")
        return tokenizers

    def build_model(self, cfg, data, assets):
        return build_translator(cfg, assets["source"].vocab_size, assets["target"].vocab_size)

    def loss(self, cfg):
        return MaskedCrossEntropy(PAD_ID, cfg["train"]["label_smoothing"])

    def metrics(self, cfg):
        return [Perplexity(mask_id=PAD_ID)]

    def datasets(self, cfg, data, assets):
        return (split_batches(cfg, data, "train", assets, shuffle=True),
                split_batches(cfg, data, "valid", assets, shuffle=False))

    # ----------------------------------------------------------------------------------------- inference
    def inference(self, cfg, run, options):
        tokenizers = read_tokenizers(run)
        return TextTranslator(run.load_model(), tokenizers["source"], tokenizers["target"], cfg["decode"],
                              beam_size=options.get("beam"),
                              languages=(cfg["data"]["source_lang"], cfg["data"]["target_lang"]))

    def score(self, cfg, module, data, split, run):
        """sacreBLEU on the whole split with the module's beam, and (with a beam) greedily, to show what it adds."""
        sources, references = (list(side) for side in zip(*data.pairs[split]))
        start = time.perf_counter()
        hypotheses, _ = translate_all(module, sources, module.beam_size)
        seconds = time.perf_counter() - start
        metrics = {"split": split, **corpus_scores(hypotheses, references), "sentences": len(sources),
                   "beam_size": module.beam_size, "sentences_per_second": round(len(sources) / seconds, 2)}
        if module.beam_size > 1:
            greedy = corpus_scores(translate_all(module, sources, 1)[0], references)
            metrics["greedy"] = {key: greedy[key] for key in ("bleu", "chrf", "bleu_lowercase")}
        return metrics

    def predict(self, signatures, info, inputs, options, module=None):
        """One line per sentence from serving_default; with the run's module, long inputs are warned about and
        --attention draws the first sentence's heat map along its translation."""
        tokenizer = module.source_tokenizer if module is not None else None
        sentences = check_sentences(inputs, tokenizer, info["max_source_length"])
        outputs = signatures["serving_default"](text=tf.constant(sentences))
        if options.get("attention"):
            decoded = module.translate_graph(module.beam_size)(tf.constant(sentences))
            tokens = decoded["tokens"].numpy()[0][: int(decoded["lengths"].numpy()[0])]
            plot_attention(*module.attention(sentences[0], tokens), options["attention"])
        for sentence, text, score in zip(sentences, outputs["translation"].numpy(), outputs["score"].numpy()):
            yield {"input": sentence, "translation": text.decode("utf-8"), "score": round(float(score), 4)}


def check_sentences(inputs, source_tokenizer, max_source_length):
    """The sentences to translate (arguments, or stdin lines when there are none or one is "-"). An empty one is an
    error; one longer than the model's limit is translated from its first max_source_length - 1 pieces, with a
    warning on stderr (when the tokenizer is at hand: predict --run-dir)."""
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


TASK = TranslationTask()
