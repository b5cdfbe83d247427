"""Subword tokenization with SentencePiece: trained in Python (the `sentencepiece` package), applied and reversed in
the TensorFlow graph (tensorflow-text), so training, evaluation and the exported model split text identically.

Ids: 0 = padding, 1 = unknown, 2 = start of sentence, 3 = end of sentence, then the pieces. A SavedModel that uses
`SubwordTokenizer` loads only after `import tensorflow_text` (it registers the SentencePiece ops); TensorFlow
Serving's standard builds include them.
"""
from pathlib import Path

from lstm_apps.config import write_atomic
from lstm_apps.errors import DataError

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


def train_sentencepiece(sentences, path, vocab_size, model_type="unigram"):
    """Train a SentencePiece model on `sentences` and write it to `path` (a .model file); returns its bytes.
    The vocabulary may come out smaller than asked on a small corpus (hard_vocab_limit=False)."""
    import io

    import sentencepiece

    sentences = [s for s in sentences if s.strip()]
    if not sentences:
        raise DataError(f"{path}: no sentences to train the subword model on")
    buffer = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=buffer, vocab_size=vocab_size, model_type=model_type,
        pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID, character_coverage=1.0,
        hard_vocab_limit=False, input_sentence_size=1_000_000, shuffle_input_sentence=True, minloglevel=2,
        num_threads=2)
    proto = buffer.getvalue()
    write_atomic(path, proto)
    return proto


def read_sentencepiece(path):
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: missing subword model; expected the run dir of a finished train")
    return path.read_bytes()


class SubwordTokenizer:
    """In-graph SentencePiece: `tokenize(string[batch])` -> ragged int32 ids (no start/end ids),
    `detokenize(ragged ids)` -> string[batch]. Track `.tokenizer` in a SavedModel (it holds the model proto).

    Example:
    >>> tokenizer = SubwordTokenizer(open("runs/x/source.model", "rb").read())  # doctest: +SKIP
    >>> tokenizer.detokenize(tokenizer.tokenize(tf.constant(["A dog runs."])))  # doctest: +SKIP
    <tf.Tensor: ... numpy=array([b'A dog runs.'], dtype=object)>
    """

    def __init__(self, model_proto):
        import tensorflow as tf
        import tensorflow_text

        self.model_proto = model_proto
        self.tokenizer = tensorflow_text.SentencepieceTokenizer(model=model_proto, out_type=tf.int32)
        self.tokenizer._model_resource = _named_model_resource(model_proto)

    @property
    def vocab_size(self):
        return int(self.tokenizer.vocab_size())

    def tokenize(self, text):
        return self.tokenizer.tokenize(text)

    def detokenize(self, ids):
        return self.tokenizer.detokenize(ids)


def _named_model_resource(model_proto):
    """The tokenizer's model resource, created under a name unique to its model.

    tensorflow-text (2.21) creates every SentencePiece resource with an empty shared_name, so a SavedModel holding
    two tokenizers (source and target) loads both as the first one: translations come back detokenized with the
    source model. Naming the resource after a hash of its model keeps them apart (tests/test_translation.py checks
    the exported model against the Keras pipeline, which would catch a regression).
    """
    import hashlib

    from tensorflow_text.python.ops import sentencepiece_tokenizer as sp_ops

    class NamedResource(sp_ops._SentencepieceModelResource):
        def _create_resource(self):
            return sp_ops.gen_sentencepiece_tokenizer.sentencepiece_op(model=self._model,
                                                                      shared_name=self.shared_name)

    NamedResource.shared_name = "lstm_apps_sentencepiece_" + hashlib.sha1(model_proto).hexdigest()[:16]
    return NamedResource(model_proto, "SentencepieceTokenizer")
