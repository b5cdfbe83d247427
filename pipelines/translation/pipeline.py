"""tf.data for the translation task: subword ids of the pairs, bucketed by length, about a fixed number of tokens
per batch."""
import numpy as np
import tensorflow as tf

from lstm_apps.errors import DataError
from lstm_apps.inputs.subwords import BOS_ID, EOS_ID


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


def split_batches(cfg, data, split, tokenizers, shuffle):
    """The batches of one split of `data` (`tokenizers`: {"source", "target"}), as training reads them; says how
    many pairs were kept and why the others were left out."""
    max_length = cfg["data"]["max_length"]
    source, target, too_long = encode_pairs(data.pairs[split], tokenizers["source"], tokenizers["target"],
                                            max_length)
    if source.nrows() == 0:
        raise DataError(f"{data.files[split][0]}: every pair is longer than data.max_length {max_length} subword "
                        f"tokens")
    print(f"{data.names[split]}: {int(source.nrows())} pairs ({too_long} longer than {max_length} subword tokens "
          f"and {data.dropped[split]} with an empty side left out)", flush=True)
    return batches(source, target, cfg["train"], max_length, shuffle)
