"""Right-padding and masks in the only shape cuDNN accepts: contiguous True on the left, no all-padding row."""
import numpy as np
import tensorflow as tf

from lstm_apps.errors import DataError


def pad_right(sequences, max_length=None, value=0, dtype="int32", source="input"):
    """Right-pad a list of 1-D sequences into an array; an empty sequence is an error naming its index.

    Masked cuDNN LSTMs need right padding and at least one real step per row, so an empty sequence is rejected
    here, where the error can still say which input it came from.

    Args:
        sequences: list of 1-D sequences (lists or arrays) of values.
        max_length: int. Width of the result; longer sequences are cut. Defaults to `None`: the longest length.
        value: the padding value. Defaults to `0` (every task's padding id).
        dtype: dtype of the result. Defaults to `"int32"`.
        source: str. What the sequences are (a file name, "batch"), for the error message. Defaults to
            `"input"`.

    Returns:
        A NumPy array `(len(sequences), max_length)`.

    Raises:
        lstm_apps.errors.DataError: if a sequence is empty.

    Example:
    >>> pad_right([[1, 2, 3], [4]]).tolist()
    [[1, 2, 3], [4, 0, 0]]
    >>> pad_right([[1, 2, 3], [4]], max_length=2, value=-1).tolist()
    [[1, 2], [4, -1]]
    >>> pad_right([[1], []], source="batch.txt")
    Traceback (most recent call last):
    ...
    lstm_apps.errors.DataError: batch.txt: sequence 1 is empty; masked LSTMs need at least one step per sequence
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
    """Boolean right-padded mask from sequence lengths; fails clearly on a zero length.

    The mask `LSTMStack` expects: True for the first `length` steps of each row. A zero length would give an
    all-padding row, which cuDNN rejects with an opaque error, so it fails here with a message that says why.

    Args:
        lengths: int tensor or list `(batch,)` of sequence lengths, each at least 1.
        max_length: int. Width of the mask. Defaults to `None`: the largest length.

    Returns:
        A bool tensor `(batch, max_length)`.

    Raises:
        tf.errors.InvalidArgumentError: if a length is 0 (eagerly; in a graph, when it runs).

    Example:
    >>> lengths_to_mask(tf.constant([3, 1]), 3).numpy().tolist()
    [[True, True, True], [True, False, False]]
    >>> lengths_to_mask([2, 1]).numpy().tolist()
    [[True, True], [True, False]]
    """
    lengths = tf.convert_to_tensor(lengths)
    check = tf.debugging.assert_positive(
        lengths, message="lengths_to_mask: a sequence has length 0; cuDNN LSTMs reject all-padding rows")
    with tf.control_dependencies([check]):
        return tf.sequence_mask(lengths, maxlen=max_length)
