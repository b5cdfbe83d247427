"""Token streams for the language model: BPTT windows (tf.data) for training, cut in memory or prepared once into
shards and streamed; unigram statistics of the training split (the output bias's start, and the perplexity floor a
model must beat)."""
from pathlib import Path

import numpy as np
import tensorflow as tf

from lstm_apps.inputs import shards
from lstm_apps.inputs.text import PAD_ID, bptt_dataset, bptt_windows, stream

TRAINING_SPLITS = ("train", "valid")  # what training reads (and `prepare` writes); evaluation scores the stream
WINDOW_FEATURES = {"inputs": tf.io.FixedLenFeature([], tf.string), "targets": tf.io.FixedLenFeature([], tf.string)}


def check_windows(cfg, data):
    """Each training split must fill at least one batch_size x bptt window (DataError naming the file)."""
    for split in TRAINING_SPLITS:
        bptt_windows(stream(data.ids[split]), cfg["train"]["batch_size"], cfg["train"]["bptt"], data.files[split])


def training_datasets(cfg, data, vocabulary):
    """(train, valid) BPTT window datasets of the splits' streams under the run's vocabulary, in order: streamed
    from their prepared shards (which hold the same windows), else cut in memory."""
    train_cfg = cfg["train"]
    return tuple(prepared_windows(data.prepared[split], train_cfg) if split in data.prepared else
                 bptt_dataset(stream(data.encode(split, vocabulary)[0]), train_cfg["batch_size"], train_cfg["bptt"],
                              data.files[split]) for split in TRAINING_SPLITS)


# ----------------------------------------------------------------------------------------- prepared shards
def prepare_splits(data, cfg, cache_dir, splits, progress=None):
    """Cut the training and validation streams once into their BPTT windows (train.batch_size x train.bptt ids,
    under the training split's vocabulary), written in order into shards under CACHE_DIR/<split>, unless shards made
    of the same files and settings are there; `data.prepared` then points the pipelines at them. Returns
    {split: Manifest}; {} without the training split (evaluation scores its split's stream: nothing to stream)."""
    if "train" not in splits:
        return {}
    train_cfg = cfg["train"]
    settings = {key: cfg["data"][key] for key in ("lowercase", "max_vocab", "train_tokens")}
    settings |= {key: train_cfg[key] for key in ("batch_size", "bptt")}
    manifests = {}
    for split in (s for s in splits if s in TRAINING_SPLITS):
        inputs, targets = bptt_windows(stream(data.ids[split]), train_cfg["batch_size"], train_cfg["bptt"],
                                       data.files[split])
        folder = Path(cache_dir) / split
        encoded = shards.one_by_one(range(len(inputs)), lambda i: serialize_window(inputs[i], targets[i]))
        manifests[split] = shards.prepare(
            folder, range(len(inputs)), encoded,
            shards.fingerprint([data.files["train"], data.files[split]], settings | {"split_name": split}),
            progress=progress and (lambda done, total: progress(split, done, total)))
        data.prepared[split] = folder
    return manifests


def serialize_window(inputs, targets):
    feature = {name: tf.train.Feature(bytes_list=tf.train.BytesList(value=[ids.astype("<i4").tobytes()]))
               for name, ids in (("inputs", inputs), ("targets", targets))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def prepared_windows(folder, train_cfg):
    """The (inputs, targets) windows of a prepared split, in order (a stateful LSTM carries its state across
    them), each [batch_size, bptt]."""
    shape = [train_cfg["batch_size"], train_cfg["bptt"]]

    def parse(record):
        example = tf.io.parse_single_example(record, WINDOW_FEATURES)
        return tuple(tf.reshape(tf.io.decode_raw(example[name], tf.int32, little_endian=True), shape)
                     for name in ("inputs", "targets"))

    windows = shards.Manifest.load(folder).examples
    return (shards.read(folder, parse).apply(tf.data.experimental.assert_cardinality(windows))
            .prefetch(tf.data.AUTOTUNE))


def unigram_log_probs(train_ids, vocab_size):
    """Add-one log unigram probabilities of the training stream (padding gets a tiny probability)."""
    counts = np.bincount(stream(train_ids)[1:], minlength=vocab_size).astype(np.float64) + 1.0
    counts[PAD_ID] = 1e-6
    return np.log(counts / counts.sum())


def unigram_perplexity(train_ids, ids, vocab_size):
    """Perplexity of the add-one unigram model of the training split on `ids` (the floor an LM must beat)."""
    return float(np.exp(-unigram_log_probs(train_ids, vocab_size)[stream(ids)[1:]].mean()))
