"""Attention pooling over time, as in de Andrade et al. 2018 ("A neural attention model for speech command
recognition"): a query projected from one step of the sequence scores every step; the output is the
softmax-weighted sum of the steps."""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="lstm_apps")
class AttentionPooling(keras.layers.Layer):
    """Pools a sequence into one vector: the softmax-weighted sum of its steps, scored by a learned query.

    A `Dense(features)` layer projects one step of the sequence (picked by `query_step`) into a query; the query's
    dot product with every step gives the scores; the output is the softmax-weighted sum of the steps.
    `query_step="middle"` follows the paper (keywords sit near the middle of a 1-s clip); "last" suits
    left-aligned input. With `return_attention=True` it also returns the weights (for plots).

    Args:
        query_step: str. The step the query is projected from: `"middle"` (step `time // 2`, the default) or
            `"last"` (step `time - 1`).
        return_attention: bool. If `True`, `call` returns `(pooled, weights)` instead of `pooled`. Defaults to
            `False`.
        **kwargs: other keyword arguments passed to `keras.layers.Layer`, including `name`, `trainable` and
            `dtype`.

    Call arguments:
        sequence: float tensor `(batch, time, features)`.

    Input shape: `(batch, time, features)`.
    Output shape: `(batch, features)`; with `return_attention=True` also the weights `(batch, time)`.

    Example:
    >>> pooled = AttentionPooling()(keras.ops.ones((2, 5, 8)))
    >>> tuple(pooled.shape)
    (2, 8)
    >>> pooled, weights = AttentionPooling(query_step="last", return_attention=True)(keras.ops.ones((2, 5, 8)))
    >>> tuple(weights.shape), keras.ops.convert_to_numpy(keras.ops.sum(weights, axis=-1)).round(4).tolist()
    ((2, 5), [1.0, 1.0])
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
