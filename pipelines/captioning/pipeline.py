"""tf.data for the captioning task: the vocabulary of the training captions, and ([clip, <eos> + words],
words + <eos>) batches, from clip arrays held in memory or prepared once into shards and streamed."""
from pathlib import Path

import numpy as np
import tensorflow as tf

from lstm_apps.inputs import shards
from lstm_apps.inputs.text import EOS_ID, PAD_ID, Vocabulary
from pipelines.captioning.features import TRAINABLE

STREAMED_SPLITS = ("train", "valid")  # what training reads; evaluation captions its split's arrays
CLIP_FEATURES = {"index": tf.io.FixedLenFeature([], tf.int64), "array": tf.io.FixedLenFeature([], tf.string)}


def build_vocabulary(references, min_count):
    """The words of {clip: [sentences]} (the training clips that have an array) seen `min_count` times or more."""
    return Vocabulary.from_tokens([w for refs in references.values() for s in refs for w in s.split()],
                                  min_count=min_count)


def caption_ids(clips, references, vocabulary, limit):
    """(every reference of `clips` in order as ragged ids, each clip's first sentence, each clip's count)."""
    sentences, starts, counts = [], [], []
    for clip in clips:
        starts.append(len(sentences))
        counts.append(len(references[clip]))
        sentences += [vocabulary.encode(s.split()[:limit])[0] for s in references[clip]]
    return tf.ragged.constant(sentences, dtype=tf.int32), np.array(starts, np.int64), np.array(counts, np.int64)


def examples(arrays, references, vocabulary, data_cfg, train_cfg, training_split):
    """(([clip, <eos> + words], words + <eos>) batches. Training: each clip `captions_per_clip` times per epoch,
    shuffled, each time with a reference drawn at random (so all references are used across epochs).
    Validation: every (clip, reference) pair once, in order."""
    clips = sorted(arrays)
    sentences, starts, counts = caption_ids(clips, references, vocabulary, data_cfg["max_caption_length"])
    stacked = tf.constant(np.stack([arrays[c] for c in clips]))
    # (clip index, sentence index) pairs
    if training_split:
        first, count = tf.constant(starts), tf.constant(counts)
        clip_indices = (tf.data.Dataset.range(len(clips)).repeat(data_cfg["captions_per_clip"])
                        .shuffle(len(clips) * data_cfg["captions_per_clip"], seed=train_cfg["seed"],
                                 reshuffle_each_iteration=True))
        draws = tf.data.Dataset.random(seed=train_cfg["seed"], rerandomize_each_iteration=True)
        pairs = tf.data.Dataset.zip(clip_indices, draws).map(lambda i, draw: (i, first[i] + draw % count[i]))
    else:
        pairs = tf.data.Dataset.from_tensor_slices((np.repeat(np.arange(len(clips)), counts),
                                                    np.arange(counts.sum(), dtype=np.int64)))
    return batched(pairs.map(lambda index, sentence: (tf.gather(stacked, index), sentence)), sentences, train_cfg)


def batched(clip_sentences, sentences, train_cfg):
    """Padded batches of examples from a dataset of (clip array, sentence index)."""
    def example(array, sentence):
        words = sentences[sentence]
        return (array, tf.concat([[EOS_ID], words], 0)), tf.concat([words, [EOS_ID]], 0)

    return (clip_sentences.map(example, num_parallel_calls=tf.data.AUTOTUNE)
            .padded_batch(train_cfg["batch_size"], padding_values=((None, PAD_ID), PAD_ID))
            .prefetch(tf.data.AUTOTUNE))


def training_datasets(cfg, data, vocabulary):
    """(training, validation) examples of the data's train and valid splits: streamed from their prepared shards
    with train.shuffle_buffer > 0, else from the arrays in memory (a prepared split read back whole)."""
    def split_examples(split):
        references, training = data.references(split), split == "train"
        if split in data.prepared and cfg["train"]["shuffle_buffer"]:
            return streamed_examples(data.prepared[split], references, vocabulary, cfg, training)
        arrays = prepared_arrays(data.prepared[split]) if split in data.prepared else data.arrays[split]
        return examples(arrays, references, vocabulary, cfg["data"], cfg["train"], training)

    return split_examples("train"), split_examples("valid")


# ----------------------------------------------------------------------------------------- prepared shards
def prepare_splits(data, cfg, cache_dir, splits, progress=None):
    """Write each training split's clip arrays (decoded frames or features, as extracted) once into shards under
    CACHE_DIR/<split>, read clip by clip (a file of the wrong shape stops it, naming the file), unless shards made
    of the same files and settings are there; `data.prepared` then points the pipelines at them. The manifest's
    settings hold the split's sorted clip names: a record's index is its clip's place among them. Returns
    {split: Manifest}; {} without the training split (evaluation captions its split's arrays)."""
    if "train" not in splits:
        return {}
    dtype = "uint8" if cfg["features"]["backbone"] == TRAINABLE else "float32"  # as features.check_shape gives
    settings = {"num_frames": cfg["data"]["num_frames"], "array": [dtype, list(data.clip_shape)],
                "features": {key: cfg["features"][key] for key in ("backbone", "weights", "size")}}
    manifests = {}
    for split in (s for s in splits if s in STREAMED_SPLITS):
        arrays = data.arrays[split]
        clips = sorted(arrays)
        position = {clip: index for index, clip in enumerate(clips)}
        files = list(arrays.paths.values()) if hasattr(arrays, "paths") else [data.sources["arrays_source"]]
        folder = Path(cache_dir) / split
        manifests[split] = shards.prepare(
            folder, clips, shards.one_by_one(clips, lambda clip: serialize_clip(position[clip], arrays[clip])),
            shards.fingerprint(files, settings | {"split_name": split, "clips": clips}),
            examples_per_shard=256, progress=progress and (lambda done, total: progress(split, done, total)))
        data.prepared[split] = folder
    return manifests


def serialize_clip(index, array):
    feature = {"index": tf.train.Feature(int64_list=tf.train.Int64List(value=[index])),
               "array": tf.train.Feature(bytes_list=tf.train.BytesList(value=[tf.io.serialize_tensor(array).numpy()]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def parse_clip(dtype, shape):
    def parse(record):
        example = tf.io.parse_single_example(record, CLIP_FEATURES)
        return example["index"], tf.ensure_shape(tf.io.parse_tensor(example["array"], dtype), shape)
    return parse


def prepared_clip_names(folder):
    return shards.Manifest.load(folder).fingerprint["settings"]["clips"]


def prepared_arrays(folder):
    """{clip: array} of a prepared split, read back whole (train.shuffle_buffer 0: as without a cache)."""
    names = prepared_clip_names(folder)
    return {names[index]: array for index, array in read_clips(folder).as_numpy_iterator()}


def read_clips(folder, shuffle_buffer=0, seed=None):
    """(clip index, array) records of a prepared split."""
    dtype, shape = shards.Manifest.load(folder).fingerprint["settings"]["array"]
    return shards.read(folder, parse_clip(tf.as_dtype(dtype), shape), shuffle_buffer=shuffle_buffer, seed=seed)


def streamed_examples(folder, references, vocabulary, cfg, training):
    """Batches streamed from a prepared split through train.shuffle_buffer clips (shards shuffled and interleaved):
    training expands each clip into captions_per_clip examples with references drawn at random, shuffled again
    in a buffer of that many examples; validation gives every (clip, reference) pair in order."""
    data_cfg, train_cfg = cfg["data"], cfg["train"]
    buffer, seed = train_cfg["shuffle_buffer"], train_cfg["seed"]
    clips = prepared_clip_names(folder)
    sentences, starts, counts = caption_ids(clips, references, vocabulary, data_cfg["max_caption_length"])
    first, count = tf.constant(starts), tf.constant(counts)
    if training:
        copies = data_cfg["captions_per_clip"]

        def expand(index, array):
            draws = tf.random.uniform([copies], 0, count[index], dtype=tf.int64)
            return tf.data.Dataset.zip(tf.data.Dataset.from_tensors(array).repeat(copies),
                                       tf.data.Dataset.from_tensor_slices(first[index] + draws))

        pairs = (read_clips(folder, buffer, seed).flat_map(expand)
                 .shuffle(buffer, seed=seed, reshuffle_each_iteration=True))
    else:
        def expand(index, array):
            return tf.data.Dataset.zip(tf.data.Dataset.from_tensors(array).repeat(count[index]),
                                       tf.data.Dataset.range(first[index], first[index] + count[index]))

        pairs = read_clips(folder).flat_map(expand)
    return batched(pairs, sentences, train_cfg)
