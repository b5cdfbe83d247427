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

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        log_probs = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
        nll = -ops.take_along_axis(log_probs, ops.expand_dims(y_true, -1), axis=-1)[..., 0]
        if self.label_smoothing > 0:
            vocab = ops.cast(ops.shape(y_pred)[-1], "float32")
            off = self.label_smoothing / (vocab - 1.0)
            nll = (1.0 - self.label_smoothing - off) * nll - off * ops.sum(log_probs, axis=-1)
        weights = ops.cast(ops.not_equal(y_true, self.mask_id), "float32")
        # one value per row, scaled so that Keras' mean over rows equals the mean over all real tokens
        rows = ops.cast(ops.shape(y_true)[0], "float32")
        return ops.sum(nll * weights, axis=-1) * rows / ops.maximum(ops.sum(weights), 1.0)

    def get_config(self):
        return {**super().get_config(), "mask_id": self.mask_id, "label_smoothing": self.label_smoothing}
