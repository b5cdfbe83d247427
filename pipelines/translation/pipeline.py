"""tf.data for the translation task: subword ids of the pairs (tokenized in memory, or prepared once into shards and
streamed), bucketed by length, about a fixed number of tokens per batch."""
from pathlib import Path

import numpy as np
import tensorflow as tf

from lstm_apps.errors import DataError
from lstm_apps.inputs import shards
from lstm_apps.inputs.subwords import BOS_ID, EOS_ID, SubwordTokenizer, train_sentencepiece

SUBWORD_FILES = {"source": "source.model", "target": "target.model"}
STREAMED_SPLITS = ("train", "valid")  # what training reads; evaluation translates the split's text
PAIR_FEATURES = {"source": tf.io.FixedLenFeature([], tf.string), "target": tf.io.FixedLenFeature([], tf.string)}
TOKENIZE_BATCH = 8192  # pairs tokenized at a time while preparing


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
    """`bucketed` batches of in-memory ragged ids (a pair per row)."""
    return bucketed(*memory_pairs(source, target, train_cfg["seed"], shuffle), train_cfg, max_length)


def memory_pairs(source, target, seed, shuffle):
    """(dataset of the rows of ragged `source`/`target`, shuffled as a whole split with `shuffle`, and each pair's
    longer side + 1)."""
    pairs = tf.data.Dataset.from_tensor_slices((source, target))
    if shuffle:
        pairs = pairs.shuffle(int(source.nrows()), seed=seed, reshuffle_each_iteration=True)
    return pairs, np.maximum(source.row_lengths().numpy(), target.row_lengths().numpy()) + 1


def bucketed(pairs, lengths, train_cfg, max_length):
    """((source + <eos>, <bos> + target), target + <eos>) batches of `pairs` (a dataset of id vectors), bucketed by
    length, right-padded to the bucket boundary, about `train.batch_tokens` tokens (padding included) per batch.
    `lengths` (each pair's longer side + 1) gives the number of batches."""
    def example(source, target):
        return ((tf.concat([source, [EOS_ID]], 0), tf.concat([[BOS_ID], target], 0)),
                tf.concat([target, [EOS_ID]], 0))

    boundaries = bucket_boundaries(max_length, train_cfg["bucket_width"])
    sizes = [max(1, train_cfg["batch_tokens"] // (boundary - 1)) for boundary in boundaries] + [1]
    # the number of batches is known (each bucket's sentences / its batch size, rounded up): tell Keras, so the
    # progress bar has an end and the last batch is not read as "input ran out of data"
    per_bucket = np.bincount(np.searchsorted(boundaries, lengths, side="right"), minlength=len(sizes))
    count = int(sum(-(-n // size) for n, size in zip(per_bucket, sizes)))
    return (pairs.map(example, num_parallel_calls=tf.data.AUTOTUNE)
            .bucket_by_sequence_length(lambda inputs, _: tf.maximum(tf.shape(inputs[0])[0], tf.shape(inputs[1])[0]),
                                       boundaries, sizes, pad_to_bucket_boundary=True)
            .apply(tf.data.experimental.assert_cardinality(count))
            .prefetch(tf.data.AUTOTUNE))


def split_batches(cfg, data, split, tokenizers, shuffle):
    """The batches of one split of `data` (`tokenizers`: {"source", "target"}), as training reads them: from its
    prepared shards, else tokenized in memory; says how many pairs were kept and why the others were left out."""
    max_length = cfg["data"]["max_length"]
    if split in data.prepared:
        pairs, lengths, too_long = prepared_pairs(data.prepared[split], cfg, shuffle)
    else:
        source, target, too_long = encode_pairs(data.pairs[split], tokenizers["source"], tokenizers["target"],
                                                max_length)
        pairs, lengths = memory_pairs(source, target, cfg["train"]["seed"], shuffle)
    if len(lengths) == 0:
        raise DataError(f"{data.files[split][0]}: every pair is longer than data.max_length {max_length} subword "
                        f"tokens")
    print(f"{data.names[split]}: {len(lengths)} pairs ({too_long} longer than {max_length} subword tokens "
          f"and {data.dropped[split]} with an empty side left out)", flush=True)
    return bucketed(pairs, lengths, cfg["train"], max_length)


# ----------------------------------------------------------------------------------------- prepared shards
def prepare_splits(data, cfg, cache_dir, splits, progress=None):
    """Tokenize the training and validation pairs once into shards under CACHE_DIR/<split>, with SentencePiece
    models trained once on the training split (CACHE_DIR/subwords, which every run on this cache copies), unless
    shards made of the same files and settings are there; `data.prepared` then points the pipelines at them.
    Every pair is kept: data.max_length filters as the shards are read. Returns {split: Manifest}; {} without the
    training split (evaluation translates the text of its split: nothing to stream)."""
    if "train" not in splits:
        return {}
    cache_dir = Path(cache_dir)
    data.subwords = subword_models(data, cfg, cache_dir / "subwords")
    tokenizers = {side: SubwordTokenizer((data.subwords / name).read_bytes()) for side, name in SUBWORD_FILES.items()}
    settings = {key: cfg["data"][key] for key in ("source_lang", "target_lang", "train_pairs")}
    settings["subwords"] = shards.fingerprint([data.subwords / name for name in SUBWORD_FILES.values()], {})
    manifests = {}
    for split in (s for s in splits if s in STREAMED_SPLITS):
        pairs = data.pairs[split]
        folder = cache_dir / split
        manifests[split] = shards.prepare(
            folder, range(len(pairs)), _encoded_pairs(pairs, tokenizers),
            shards.fingerprint(data.files[split], settings | {"split_name": data.names[split]}),
            examples_per_shard=100_000, progress=progress and (lambda done, total: progress(split, done, total)))
        data.prepared[split] = folder
    return manifests


def subword_models(data, cfg, folder):
    """The folder of the two SentencePiece models trained on the training split with the tokenizer.* settings:
    trained again when the training files or those settings changed (the fingerprint, written last, says so)."""
    made_of = shards.fingerprint(data.files["train"], {"tokenizer": cfg["tokenizer"],
                                                       "train_pairs": cfg["data"]["train_pairs"]})
    if shards.Manifest.load(folder) == shards.Manifest(made_of, complete=True):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for index, (side, name) in enumerate(SUBWORD_FILES.items()):
        train_sentencepiece([pair[index] for pair in data.pairs["train"]], folder / name,
                            cfg["tokenizer"][f"{side}_vocab"], cfg["tokenizer"]["model_type"])
    shards.Manifest(made_of, complete=True).save(folder)
    return folder


def _encoded_pairs(pairs, tokenizers):
    """`shards.prepare`'s `encoded`: serialized (source ids, target ids) of pairs[start:], tokenized in batches."""
    def encoded(start):
        for first in range(start, len(pairs), TOKENIZE_BATCH):
            chunk = pairs[first:first + TOKENIZE_BATCH]
            ids = [tokenizers[side].tokenize(tf.constant([pair[index] for pair in chunk]))
                   for index, side in enumerate(SUBWORD_FILES)]
            for source, target in zip(ids[0].numpy(), ids[1].numpy()):
                yield serialize_pair(source, target)
    return encoded


def serialize_pair(source, target):
    feature = {side: tf.train.Feature(bytes_list=tf.train.BytesList(value=[np.asarray(ids, "<i4").tobytes()]))
               for side, ids in (("source", source), ("target", target))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def parse_pair(record):
    example = tf.io.parse_single_example(record, PAIR_FEATURES)
    return tuple(tf.io.decode_raw(example[side], tf.int32, little_endian=True) for side in ("source", "target"))


def prepared_pairs(folder, cfg, shuffle):
    """(dataset of (source ids, target ids) that fit data.max_length, their longer side + 1 as an array, pairs left
    out for length) from prepared shards. With `shuffle`: through train.shuffle_buffer pairs (shards shuffled and
    interleaved), or with 0 the whole split shuffled as the in-memory pipeline does (the same batches). The lengths
    come from one pass over the shards (the batch count needs them; 4 bytes a pair)."""
    max_length, seed, buffer = cfg["data"]["max_length"], cfg["train"]["seed"], cfg["train"]["shuffle_buffer"]
    lengths = np.concatenate(list(
        shards.read(folder, lambda record: tf.maximum(*(tf.size(ids) for ids in parse_pair(record))) + 1)
        .batch(65536).as_numpy_iterator()))
    kept = lengths <= max_length
    fits = lambda source, target: tf.maximum(tf.size(source), tf.size(target)) < max_length  # noqa: E731
    if shuffle and buffer:
        pairs = shards.read(folder, parse_pair, shuffle_buffer=buffer, seed=seed).filter(fits)
    else:
        pairs = shards.read(folder, parse_pair).filter(fits)
        if shuffle:
            pairs = pairs.shuffle(int(kept.sum()), seed=seed, reshuffle_each_iteration=True)
    return pairs, lengths[kept], int((~kept).sum())
