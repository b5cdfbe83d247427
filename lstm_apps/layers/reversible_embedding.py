"""An embedding that is also the output layer (weight tying), with an output bias and word-type dropout.

Built on `keras.layers.ReversibleEmbedding`: Keras supplies the tied (or untied) reverse projection, `reverse_dtype`
and `logit_soft_cap`; this subclass adds what the language model and the attention decoder need on top. It keeps
the registered name, config keys and variable order of the project's earlier standalone layer, so `.keras` files
saved before the change load unchanged (tests/test_layers.py loads one and compares its outputs).
"""
import copy

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="lstm_apps")
class ReversibleEmbedding(keras.layers.ReversibleEmbedding):
    """A token embedding that also scores hidden vectors against every token, with an output bias.

    `layer(ids)` embeds token ids; `layer(hidden, reverse=True)` scores hidden vectors against every embedding
    (logits = hidden @ embeddings^T + bias), so input and output share one matrix (Press & Wolf 2017, Inan et al.
    2017). `hidden` must have `output_dim` features: project it first when the LSTM is wider (the language model
    adds a `Dense(embedding_dim)` "projection" layer then).

    What it adds to `keras.layers.ReversibleEmbedding`:
    - an output bias of `input_dim` values added to the reverse logits (`output_bias=True`, the `bias`
      attribute). The language model starts it at the log unigram frequencies of its training split, so an
      untrained model already predicts word frequencies.
    - `word_dropout`: drops whole word types for a batch during training (Gal & Ghahramani 2016 "embedding
      dropout", as in AWD-LSTM): every occurrence of a dropped word gets a zero vector; the rest are scaled by
      1/(1-rate). The output (reverse) direction always uses the full matrix.
    - no masks: the layer never produces one (`mask_zero` is not accepted), but accepts a masked input in the
      reverse direction. Pass masks to the LSTMs explicitly (`lstm_apps.layers.lengths_to_mask`), so the logits
      never carry one into the loss.

    Args:
        input_dim: int. Size of the vocabulary, i.e. the largest token id + 1.
        output_dim: int. Size of each embedding vector; hidden vectors given with `reverse=True` must have
            this many features.
        word_dropout: float in [0, 1). Fraction of word types whose embedding is zeroed for a training batch.
            Defaults to `0.0` (off).
        output_bias: bool. Whether the reverse direction adds a trainable bias of shape `(input_dim,)`
            (initialised to zeros). Defaults to `True`.
        tie_weights: bool. Whether the reverse direction uses the transposed embedding matrix (`True`) or a
            separate `(output_dim, input_dim)` matrix. Defaults to `True`.
        embeddings_initializer: Initializer for the embedding matrix. Defaults to `"uniform"`.
        embeddings_regularizer: Optional regularizer for the embedding matrix. Defaults to `None`.
        embeddings_constraint: Optional constraint for the embedding matrix. Defaults to `None`.
        reverse_dtype: Optional dtype the reverse matmul runs in. Defaults to `None` (the layer's
            compute dtype).
        logit_soft_cap: Optional float; the reverse logits become `tanh(logits / cap) * cap`. Only with
            `output_bias=False` (the cap would otherwise act before the bias). Defaults to `None`.
        **kwargs: other keyword arguments passed to `keras.layers.ReversibleEmbedding`, including `name`,
            `trainable` and `dtype`.

    Call arguments:
        inputs: int tensor of token ids `(batch, ...)`, or with `reverse=True` a float tensor
            `(batch, ..., output_dim)`.
        reverse: bool. `False` (default) embeds ids; `True` projects hidden vectors to logits.
        training: bool. Word dropout only acts when `True` (forward direction only).

    Input shape: `(batch, ...)` token ids; with `reverse=True`, `(batch, ..., output_dim)`.
    Output shape: `(batch, ..., output_dim)`; with `reverse=True`, `(batch, ..., input_dim)`.

    Example:
    >>> embedding = ReversibleEmbedding(100, 16)
    >>> hidden = embedding(keras.ops.ones((2, 5), "int32"))
    >>> tuple(hidden.shape)
    (2, 5, 16)
    >>> tuple(embedding(hidden, reverse=True).shape)
    (2, 5, 100)
    >>> [(variable.name, tuple(variable.shape)) for variable in embedding.weights]
    [('embeddings', (100, 16)), ('output_bias', (100,))]
    """

    def __init__(self, input_dim, output_dim, word_dropout=0.0, output_bias=True, tie_weights=True,
                 embeddings_initializer="uniform", embeddings_regularizer=None, embeddings_constraint=None,
                 reverse_dtype=None, logit_soft_cap=None, **kwargs):
        if kwargs.pop("mask_zero", False):
            raise ValueError("ReversibleEmbedding produces no mask (mask_zero=True is not supported): pass masks to "
                             "the LSTMs explicitly, e.g. lstm_apps.layers.lengths_to_mask")
        if output_bias and logit_soft_cap is not None:
            raise ValueError("logit_soft_cap needs output_bias=False: Keras caps the logits before the bias is added")
        super().__init__(input_dim, output_dim, tie_weights=tie_weights,
                         embeddings_initializer=embeddings_initializer,
                         embeddings_regularizer=embeddings_regularizer, embeddings_constraint=embeddings_constraint,
                         mask_zero=False, reverse_dtype=reverse_dtype, logit_soft_cap=logit_soft_cap, **kwargs)
        self.word_dropout = word_dropout
        self.output_bias = output_bias
        self.seed_generator = keras.random.SeedGenerator()
        self.supports_masking = True  # accepts a masked input (the reverse direction); produces no mask

    def build(self, input_shape=None):
        if self.built:
            return
        super().build(input_shape)  # embeddings (and reverse_embeddings when untied), as Keras creates them
        if self.output_bias:
            # created after the matrix, named "output_bias": the variable order of the earlier layer's files
            self.bias = self.add_weight(shape=(self.input_dim,), initializer="zeros", name="output_bias")

    def call(self, inputs, reverse=False, training=None):
        if reverse:
            logits = super().call(inputs, reverse=True)
            return ops.add(logits, ops.cast(self.bias, logits.dtype)) if self.output_bias else logits
        if not training or self.word_dropout <= 0:
            return super().call(inputs)
        keep = keras.random.dropout(ops.ones((self.input_dim, 1), self.variable_dtype), self.word_dropout,
                                    seed=self.seed_generator)
        embeddings = ops.cast(self.embeddings * keep, self.compute_dtype)
        return ops.take(embeddings, ops.cast(inputs, "int32"), axis=0)

    @property
    def variable_serialization_spec(self):
        # Keras saves the variables named here, in this order; the bias comes last (weights file key "1" when tied).
        spec = copy.deepcopy(super().variable_serialization_spec)
        for names in spec.values():
            names.append("bias")  # skipped by Keras when the attribute is absent (output_bias=False)
        return spec

    def compute_output_shape(self, input_shape, reverse=False):
        if reverse:
            return (*input_shape[:-1], self.input_dim)
        return (*input_shape, self.output_dim)

    def compute_output_spec(self, inputs, reverse=False, training=None):
        shape = self.compute_output_shape(inputs.shape, reverse=reverse)
        return keras.KerasTensor(shape, dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.pop("mask_zero", None)
        config.update(word_dropout=self.word_dropout, output_bias=self.output_bias)
        return config
