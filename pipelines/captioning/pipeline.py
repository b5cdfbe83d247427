"""tf.data for the captioning task: the vocabulary of the training captions, and ([clip, <eos> + words],
words + <eos>) batches."""
import numpy as np
import tensorflow as tf

from lstm_apps.inputs.text import EOS_ID, PAD_ID, Vocabulary


def build_vocabulary(references, min_count):
    """The words of {clip: [sentences]} (the training clips that have an array) seen `min_count` times or more."""
    return Vocabulary.from_tokens([w for refs in references.values() for s in refs for w in s.split()],
                                  min_count=min_count)


def examples(arrays, references, vocabulary, data_cfg, train_cfg, training_split):
    """(([clip, <eos> + words], words + <eos>) batches. Training: each clip `captions_per_clip` times per epoch,
    shuffled, each time with a reference drawn at random (so all references are used across epochs).
    Validation: every (clip, reference) pair once, in order."""
    clips = sorted(arrays)
    limit = data_cfg["max_caption_length"]
    sentences, starts, counts = [], [], []
    for clip in clips:
        starts.append(len(sentences))
        counts.append(len(references[clip]))
        sentences += [vocabulary.encode(s.split()[:limit])[0] for s in references[clip]]
    stacked = tf.constant(np.stack([arrays[c] for c in clips]))
    sentences = tf.ragged.constant(sentences, dtype=tf.int32)
    # (clip index, sentence index) pairs
    if training_split:
        first, count = tf.constant(starts, tf.int64), tf.constant(counts, tf.int64)
        clip_indices = (tf.data.Dataset.range(len(clips)).repeat(data_cfg["captions_per_clip"])
                        .shuffle(len(clips) * data_cfg["captions_per_clip"], seed=train_cfg["seed"],
                                 reshuffle_each_iteration=True))
        draws = tf.data.Dataset.random(seed=train_cfg["seed"], rerandomize_each_iteration=True)
        pairs = tf.data.Dataset.zip(clip_indices, draws).map(lambda i, draw: (i, first[i] + draw % count[i]))
    else:
        pairs = tf.data.Dataset.from_tensor_slices((
            np.array([i for i in range(len(clips)) for _ in range(counts[i])], np.int64),
            np.arange(sum(counts), dtype=np.int64)))

    def example(index, sentence):
        words = sentences[sentence]
        return ((tf.gather(stacked, index), tf.concat([[EOS_ID], words], 0)), tf.concat([words, [EOS_ID]], 0))

    return (pairs.map(example, num_parallel_calls=tf.data.AUTOTUNE)
            .padded_batch(train_cfg["batch_size"], padding_values=((None, PAD_ID), PAD_ID))
            .prefetch(tf.data.AUTOTUNE))


def training_datasets(cfg, data, vocabulary):
    """(training, validation) examples of the data's train and valid splits."""
    return tuple(examples(data.arrays[split], data.references(split), vocabulary, cfg["data"], cfg["train"],
                          training_split=split == "train") for split in ("train", "valid"))
