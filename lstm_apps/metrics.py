"""Keras metrics shared by the text tasks."""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="lstm_apps")
class Perplexity(keras.metrics.Metric):
    """exp(mean token cross-entropy) over everything seen since the last reset (a whole epoch in `fit`).

    Averaging the cross-entropy first and exponentiating once gives the corpus perplexity, not a mean of
    per-batch perplexities. Targets equal to `mask_id` (padding) are left out.

    Example:
    >>> metric = Perplexity(from_logits=True)
    >>> metric.update_state([[1]], keras.ops.log([[[0.5, 0.5]]]))
    >>> round(float(metric.result()), 3)
    2.0
    """

    def __init__(self, from_logits=True, mask_id=None, name="perplexity", **kwargs):
        super().__init__(name=name, **kwargs)
        self.from_logits = from_logits
        self.mask_id = mask_id
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        losses = keras.losses.sparse_categorical_crossentropy(y_true, ops.cast(y_pred, "float32"),
                                                              from_logits=self.from_logits)
        weights = ops.ones_like(losses)
        if self.mask_id is not None:
            weights = ops.cast(ops.not_equal(y_true, self.mask_id), losses.dtype)
        if sample_weight is not None:
            weights = weights * ops.cast(sample_weight, losses.dtype)
        self.total.assign_add(ops.sum(losses * weights))
        self.count.assign_add(ops.sum(weights))

    def result(self):
        return ops.exp(self.total / ops.maximum(self.count, 1.0))

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits, "mask_id": self.mask_id}
