"""Word-tokenized text: corpus reading, the vocabulary, and token streams cut into BPTT windows.

A corpus file holds one sentence per line, words separated by whitespace (PTB, WikiText). Every line ends with
`<eos>` (empty lines too, as in the reference PyTorch and AWD-LSTM readers, so token counts match published ones).
Ids: 0 = `<pad>` (never in a stream; pads batches of prompts), 1 = `<unk>`, 2 = `<eos>`, then words by frequency.
The same ids come out of `keras.layers.StringLookup(mask_token=PAD, oov_token=UNK)` built by `Vocabulary.lookup`,
so Python (training) and the exported graph (serving) map words identically.
"""
import collections
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstm_apps.errors import DataError

PAD, UNK, EOS = "<pad>", "<unk>", "<eos>"
SPECIALS = (PAD, UNK, EOS)
PAD_ID, UNK_ID, EOS_ID = 0, 1, 2


def read_lines(path):
    """A text file's lines (plain or .gz), decoded as UTF-8; a bad byte is a DataError naming the file, line and
    column."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; expected a word-tokenized text file (one sentence per line)")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        import gzip
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise DataError(f"{path}: not a readable gzip file ({error}); expected gzip-compressed text") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        raise DataError(f"{path}:{line}:{column}: not UTF-8 text (byte 0x{raw[error.start]:02x}); "
                        f"expected a UTF-8 text file") from None
    return text.splitlines()


def read_parallel(source_path, target_path):
    """Line-aligned sentence pairs from two files (plain or .gz): (pairs, dropped) where pairs is a list of
    (source, target) with both sides stripped, and dropped counts the pairs with an empty side (left out).
    Files with different line counts are a DataError naming both files and both counts."""
    sources, targets = read_lines(source_path), read_lines(target_path)
    if len(sources) != len(targets):
        raise DataError(f"{source_path} has {len(sources)} lines but {target_path} has {len(targets)}; "
                        f"expected line-aligned parallel files")
    return _keep_full_pairs(zip(sources, targets))


def read_parallel_tsv(path):
    """Sentence pairs from a TSV file, source<TAB>target per line: (pairs, dropped) as `read_parallel`; a line
    without exactly one tab is a DataError naming the file and line."""
    rows = []
    for number, line in enumerate(read_lines(path), start=1):
        fields = line.split("\t")
        if len(fields) != 2:
            raise DataError(f"{path}:{number}: expected source<TAB>target (one tab), found {len(fields) - 1} tabs")
        rows.append(fields)
    return _keep_full_pairs(rows)


def _keep_full_pairs(rows):
    pairs = [(source.strip(), target.strip()) for source, target in rows]
    kept = [pair for pair in pairs if pair[0] and pair[1]]
    return kept, len(pairs) - len(kept)


def read_corpus(path, lowercase=False):
    """Tokens of a corpus file with `<eos>` after every line; an empty corpus is a DataError."""
    tokens = []
    words = 0
    for line in read_lines(path):
        line_words = (line.lower() if lowercase else line).split()
        words += len(line_words)
        tokens.extend(line_words)
        tokens.append(EOS)
    if words == 0:
        raise DataError(f"{path}: empty corpus (no words); expected one whitespace-tokenized sentence per line")
    return tokens


@dataclass
class Vocabulary:
    """Words by id (`words[0:3]` are the specials). Build with `from_tokens`, keep with `to_json`/`from_json`."""

    words: list

    @classmethod
    def from_tokens(cls, tokens, max_size=0, min_count=1):
        """The training split's words seen at least `min_count` times, most frequent first (ties alphabetically);
        `max_size` > 0 caps the total size, specials included; the rest become `<unk>`."""
        counts = collections.Counter(t for t in tokens if t not in SPECIALS)
        ranked = sorted((w for w in counts if counts[w] >= min_count), key=lambda w: (-counts[w], w))
        if max_size > 0:
            ranked = ranked[: max(0, max_size - len(SPECIALS))]
        return cls(list(SPECIALS) + ranked)

    def __len__(self):
        return len(self.words)

    def __post_init__(self):
        self.ids = {word: index for index, word in enumerate(self.words)}

    def encode(self, tokens):
        """(ids as int32 array, number of out-of-vocabulary tokens mapped to `<unk>`)."""
        ids = np.fromiter((self.ids.get(t, UNK_ID) for t in tokens), dtype=np.int32, count=len(tokens))
        oov = sum(1 for t in tokens if t not in self.ids)
        return ids, oov

    def decode(self, ids):
        return [self.words[i] for i in ids]

    def lookup(self, invert=False):
        """A StringLookup layer with these ids (an in-graph word -> id table, or id -> word with `invert`)."""
        import keras

        return keras.layers.StringLookup(vocabulary=self.words[len(SPECIALS) - 1:], mask_token=PAD, oov_token=UNK,
                                         num_oov_indices=1, invert=invert)

    def to_json(self):
        return {"words": self.words}

    @classmethod
    def from_json(cls, obj):
        words = obj["words"]
        if tuple(words[: len(SPECIALS)]) != SPECIALS:
            raise DataError(f"vocabulary: expected the specials {SPECIALS} first, found {words[:3]}")
        return cls(list(words))


def stream(ids):
    """The token stream of a split: `<eos>` first, so the split's first word is predicted from a sentence start
    and every token of the split (each `<eos>` included) is a target exactly once."""
    return np.concatenate([[EOS_ID], ids]).astype(np.int32)


def bptt_windows(token_stream, batch_size, bptt, source="corpus"):
    """The classic BPTT layout: (inputs, targets), each [windows, batch_size, bptt].

    The stream is cut into `batch_size` contiguous rows; window i+1 of every row continues window i, so a stateful
    LSTM carries its state across windows. The tail that does not fill a whole window is dropped.
    """
    rows_length = (len(token_stream) - 1) // batch_size
    if rows_length < bptt:
        need = batch_size * bptt + 1
        raise DataError(f"{source}: {len(token_stream) - 1} tokens are too few for batch_size {batch_size} x "
                        f"bptt {bptt} (need at least {need}); lower train.batch_size or train.bptt")
    windows = rows_length // bptt
    used = batch_size * windows * bptt
    inputs = token_stream[:used].reshape(batch_size, windows, bptt).transpose(1, 0, 2)
    targets = token_stream[1:used + 1].reshape(batch_size, windows, bptt).transpose(1, 0, 2)
    return np.ascontiguousarray(inputs), np.ascontiguousarray(targets)


def bptt_dataset(token_stream, batch_size, bptt, source="corpus"):
    """`bptt_windows` as a tf.data.Dataset of (inputs, targets) batches, in order (never shuffled)."""
    import tensorflow as tf

    inputs, targets = bptt_windows(token_stream, batch_size, bptt, source)
    return tf.data.Dataset.from_tensor_slices((inputs, targets)).prefetch(tf.data.AUTOTUNE)
