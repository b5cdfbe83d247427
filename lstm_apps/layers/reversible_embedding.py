"""An embedding that is also the output layer (weight tying), with word-type dropout."""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="lstm_apps")
class ReversibleEmbedding(keras.layers.Embedding):
    """`layer(ids)` embeds token ids; `layer(hidden, reverse=True)` scores hidden vectors against every embedding
    (logits = hidden @ embeddings^T + bias), so input and output share one matrix (Press & Wolf 2017, Inan et al.
    2017). `hidden` must have `output_dim` features: project it first when the LSTM is wider.

    `word_dropout` drops whole word types for a batch during training (Gal & Ghahramani 2016 "embedding dropout",
    as in AWD-LSTM): every occurrence of a dropped word gets a zero vector; the rest are scaled by 1/(1-rate). The
    output (reverse) direction always uses the full matrix. Masks are not produced: pass masks to the LSTMs
    explicitly (`lstm_apps.layers.lengths_to_mask`), so the logits never carry one into the loss.

    Example:
    >>> embedding = ReversibleEmbedding(100, 16)
    >>> hidden = embedding(keras.ops.ones((2, 5), "int32"))
    >>> embedding(hidden, reverse=True).shape
    (2, 5, 100)
    """

    def __init__(self, input_dim, output_dim, word_dropout=0.0, output_bias=True, **kwargs):
        kwargs.pop("mask_zero", None)
        super().__init__(input_dim, output_dim, **kwargs)
        self.word_dropout = word_dropout
        self.output_bias = output_bias
        self.seed_generator = keras.random.SeedGenerator()
        self.supports_masking = True  # accepts a masked input (the reverse direction); produces no mask

    def build(self, input_shape=None):
        super().build(input_shape)
        if self.output_bias:
            self.bias = self.add_weight(shape=(self.input_dim,), initializer="zeros", name="output_bias")

    def call(self, inputs, reverse=False, training=None):
        if reverse:
            kernel = ops.cast(ops.transpose(self.embeddings), self.compute_dtype)
            logits = ops.matmul(ops.cast(inputs, self.compute_dtype), kernel)
            return logits + ops.cast(self.bias, self.compute_dtype) if self.output_bias else logits
        if not training or self.word_dropout <= 0:
            return super().call(inputs)
        keep = keras.random.dropout(ops.ones((self.input_dim, 1), self.variable_dtype), self.word_dropout,
                                    seed=self.seed_generator)
        embeddings = ops.cast(self.embeddings * keep, self.compute_dtype)
        return ops.take(embeddings, ops.cast(inputs, "int32"), axis=0)

    # Embedding saves only its (possibly quantized) matrix; save every variable, the output bias included.
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape, reverse=False):
        if reverse:
            return (*input_shape[:-1], self.input_dim)
        return super().compute_output_shape(input_shape)

    def compute_output_spec(self, inputs, reverse=False, training=None):
        shape = self.compute_output_shape(inputs.shape, reverse=reverse)
        return keras.KerasTensor(shape, dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.pop("mask_zero", None)
        config.update(word_dropout=self.word_dropout, output_bias=self.output_bias)
        return config
