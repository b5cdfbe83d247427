"""Luong et al. 2015 global attention, applied after a decoder LSTM over the whole target sequence.

Attention reads the decoder's outputs instead of feeding back into its input (no "input feeding"), so the decoder
LSTM runs over the whole target at once in training: one cuDNN call instead of a step-by-step loop.
"""
import keras
from keras import ops

NEG_INF = -1e9


@keras.saving.register_keras_serializable(package="lstm_apps")
class LuongAttention(keras.layers.Layer):
    """Luong et al. 2015 global attention of decoder outputs (queries) over an encoder's memory.

    score(h_t, h_s) = h_t W_a h_s ("general"; `score="dot"` drops W_a and needs q == m); weights = softmax over the
    memory steps, padding steps (memory_mask False) excluded; context = weights @ memory; attentional =
    tanh(W_c [context; h_t]) with `units` features, which the output layer reads. Neither projection has a bias.

    Args:
        units: int. Features of the attentional output (the width the output layer reads; the embedding size
            when the output layer is tied to the embedding).
        score: str. `"general"` (the default: a learned `W_a` maps queries to the memory's width) or `"dot"`
            (no `W_a`: queries and memory must have the same number of features).
        **kwargs: other keyword arguments passed to `keras.layers.Layer`, including `name`, `trainable` and
            `dtype`.

    Call arguments:
        inputs: list `[queries, memory, memory_mask]`: queries `(batch, t, q)`, memory `(batch, s, m)`,
            memory_mask bool `(batch, s)` (True for real memory steps; every row needs one).

    Input shape: `[(batch, t, q), (batch, s, m), (batch, s)]`.
    Output shape: `[attentional (batch, t, units), weights (batch, t, s)]`; no masks.

    Example:
    >>> attention = LuongAttention(units=8)
    >>> out, weights = attention([keras.ops.ones((2, 3, 4)), keras.ops.ones((2, 5, 6)),
    ...                           keras.ops.ones((2, 5), "bool")])
    >>> tuple(out.shape), tuple(weights.shape)
    ((2, 3, 8), (2, 3, 5))
    >>> mask = keras.ops.convert_to_tensor([[True, True, False, False, False]] * 2)
    >>> _, weights = LuongAttention(units=4, score="dot")([keras.ops.ones((2, 3, 6)), keras.ops.ones((2, 5, 6)), mask])
    >>> keras.ops.convert_to_numpy(weights[0, 0]).round(3).tolist()  # padding steps get no weight
    [0.5, 0.5, 0.0, 0.0, 0.0]
    """

    def __init__(self, units, score="general", **kwargs):
        super().__init__(**kwargs)
        if score not in ("general", "dot"):
            raise ValueError(f"score must be 'general' or 'dot', got {score!r}")
        self.units = units
        self.score = score

    def build(self, input_shape):
        query_shape, memory_shape, _ = input_shape
        if self.score == "general":
            self.query_projection = keras.layers.Dense(memory_shape[-1], use_bias=False, name="query_projection")
            self.query_projection.build(query_shape)
        self.combine = keras.layers.Dense(self.units, activation="tanh", use_bias=False, name="combine")
        self.combine.build((*query_shape[:-1], query_shape[-1] + memory_shape[-1]))
        self.built = True

    def call(self, inputs):
        queries, memory, memory_mask = inputs
        keys = self.query_projection(queries) if self.score == "general" else queries
        scores = ops.matmul(keys, ops.transpose(memory, (0, 2, 1)))  # [batch, t, s]
        scores = ops.where(ops.expand_dims(ops.cast(memory_mask, "bool"), 1), scores, NEG_INF)
        weights = ops.softmax(scores, axis=-1)
        context = ops.matmul(weights, memory)
        return [self.combine(ops.concatenate([context, queries], axis=-1)), weights]

    def compute_mask(self, inputs, mask=None):
        return [None, None]

    def compute_output_shape(self, input_shape):
        query_shape, memory_shape, _ = input_shape
        return [(*query_shape[:-1], self.units), (*query_shape[:-1], memory_shape[1])]

    def get_config(self):
        return {**super().get_config(), "units": self.units, "score": self.score}
