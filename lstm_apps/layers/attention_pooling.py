"""Attention pooling over time, as in de Andrade et al. 2018 ("A neural attention model for speech command
recognition"): a query projected from one step of the sequence scores every step; the output is the
softmax-weighted sum of the steps."""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="lstm_apps")
class AttentionPooling(keras.layers.Layer):
    """[batch, time, features] -> [batch, features]; `query_step` picks the step the query comes from.

    `query_step="middle"` follows the paper (keywords sit near the middle of a 1-s clip); "last" suits left-aligned
    input. With `return_attention=True` it also returns the weights [batch, time] (for plots).

    Example:
    >>> pooled = AttentionPooling()(keras.ops.ones((2, 5, 8)))
    >>> tuple(pooled.shape)
    (2, 8)
    """

    def __init__(self, query_step="middle", return_attention=False, **kwargs):
        super().__init__(**kwargs)
        if query_step not in ("middle", "last"):
            raise ValueError(f"query_step must be 'middle' or 'last', got {query_step!r}")
        self.query_step = query_step
        self.return_attention = return_attention

    def build(self, input_shape):
        self.query = keras.layers.Dense(input_shape[-1], name="query")
        self.query.build((input_shape[0], input_shape[-1]))
        self.built = True

    def call(self, sequence):
        steps = ops.shape(sequence)[1]
        index = steps // 2 if self.query_step == "middle" else steps - 1
        query = self.query(sequence[:, index])
        scores = ops.einsum("btf,bf->bt", sequence, query)
        weights = ops.softmax(scores, axis=-1)
        pooled = ops.einsum("bt,btf->bf", weights, sequence)
        return (pooled, weights) if self.return_attention else pooled

    def compute_output_shape(self, input_shape):
        pooled = (input_shape[0], input_shape[-1])
        return (pooled, (input_shape[0], input_shape[1])) if self.return_attention else pooled

    def get_config(self):
        config = super().get_config()
        config.update(query_step=self.query_step, return_attention=self.return_attention)
        return config
