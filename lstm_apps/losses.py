"""Keras losses shared by the sequence tasks."""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="lstm_apps")
class MaskedCrossEntropy(keras.losses.Loss):
    """Token cross-entropy from logits, averaged over the tokens that are not padding (`mask_id`), with optional
    label smoothing (Szegedy et al. 2016: the target gets 1 - e, every other id e / (vocab - 1)).

    The mean is over real tokens, so a batch padded to a bucket boundary scores the same as the unpadded one.

    Example:
    >>> loss = MaskedCrossEntropy(mask_id=0)
    >>> round(float(loss([[3, 0]], keras.ops.log([[[0.25] * 4, [0.25] * 4]]))), 4)  # only the first token counts
    1.3863
    """

    def __init__(self, mask_id=0, label_smoothing=0.0, name="masked_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.mask_id = mask_id
        self.label_smoothing = label_smoothing

    def token_losses(self, y_true, y_pred):
        """(loss of every token, 1 for real tokens and 0 for padding), both (batch, time)."""
        y_true = ops.cast(y_true, "int32")
        log_probs = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
        nll = -ops.take_along_axis(log_probs, ops.expand_dims(y_true, -1), axis=-1)[..., 0]
        if self.label_smoothing > 0:
            vocab = ops.cast(ops.shape(y_pred)[-1], "float32")
            off = self.label_smoothing / (vocab - 1.0)
            nll = (1.0 - self.label_smoothing - off) * nll - off * ops.sum(log_probs, axis=-1)
        return nll, ops.cast(ops.not_equal(y_true, self.mask_id), "float32")

    def call(self, y_true, y_pred):
        nll, weights = self.token_losses(y_true, y_pred)
        # one value per row, scaled so that Keras' mean over rows equals the mean over all real tokens
        rows = ops.cast(ops.shape(nll)[0], "float32")
        return ops.sum(nll * weights, axis=-1) * rows / ops.maximum(ops.sum(weights), 1.0)

    def sum_and_count(self, y_true, y_pred):
        """(summed token losses, real tokens): what `sum_and_count` combines across replicas."""
        nll, weights = self.token_losses(y_true, y_pred)
        return ops.sum(nll * weights), ops.sum(weights)

    def get_config(self):
        return {**super().get_config(), "mask_id": self.mask_id, "label_smoothing": self.label_smoothing}


def sum_and_count(loss, y_true, y_pred):
    """(sum, count) of a Keras loss over a batch, so that replicas holding different parts of a global batch give
    its exact mean, sum over replicas of the sums / sum of the counts (a mean of per-replica means is not, when the
    parts differ in size). A loss with its own `sum_and_count` (masked token losses) says what it counts;
    otherwise the count is the number of values the loss averages (Keras's sum_over_batch_size)."""
    if hasattr(loss, "sum_and_count"):
        return loss.sum_and_count(y_true, y_pred)
    values = ops.cast(loss.call(y_true, y_pred), "float32")
    return ops.sum(values), ops.cast(ops.size(values), "float32")
