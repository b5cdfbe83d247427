"""Right-padding and masks in the only shape cuDNN accepts: contiguous True on the left, no all-padding row."""
import numpy as np
import tensorflow as tf

from lstm_apps.errors import DataError


def pad_right(sequences, max_length=None, value=0, dtype="int32", source="input"):
    """Right-pad a list of 1-D sequences into an array; an empty sequence is an error naming its index.

    >>> pad_right([[1, 2, 3], [4]]).tolist()
    [[1, 2, 3], [4, 0, 0]]
    """
    lengths = [len(s) for s in sequences]
    for index, length in enumerate(lengths):
        if length == 0:
            raise DataError(f"{source}: sequence {index} is empty; masked LSTMs need at least one step per sequence")
    width = max_length or max(lengths, default=0)
    out = np.full((len(sequences), width), value, dtype=dtype)
    for index, seq in enumerate(sequences):
        seq = np.asarray(seq)[:width]
        out[index, : len(seq)] = seq
    return out


def lengths_to_mask(lengths, max_length=None):
    """Boolean right-padded mask [batch, max_length] from lengths; fails clearly on a zero length.

    >>> lengths_to_mask(tf.constant([3, 1]), 3).numpy().tolist()
    [[True, True, True], [True, False, False]]
    """
    lengths = tf.convert_to_tensor(lengths)
    check = tf.debugging.assert_positive(
        lengths, message="lengths_to_mask: a sequence has length 0; cuDNN LSTMs reject all-padding rows")
    with tf.control_dependencies([check]):
        return tf.sequence_mask(lengths, maxlen=max_length)
