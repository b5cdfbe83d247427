"""A stack of LSTM layers that the TF backend runs on the cuDNN kernel whenever a GPU is present."""
import keras

from lstm_apps.layers.portable_lstm import LSTM

# The arguments Keras 3 checks before it picks cuDNN (keras/src/backend/tensorflow/rnn.py, `cudnn_ok`), plus the
# one the layer checks itself (recurrent_dropout). LSTMStack never lets a caller change them.
CUDNN_LSTM_ARGS = {
    "activation": "tanh",
    "recurrent_activation": "sigmoid",
    "recurrent_dropout": 0.0,
    "unroll": False,
    "use_bias": True,
}


@keras.saving.register_keras_serializable(package="lstm_apps")
class LSTMStack(keras.layers.Layer):
    """`num_layers` LSTM layers (optionally bidirectional) with dropout around them, all cuDNN-eligible.

    Every LSTM uses tanh/sigmoid, recurrent_dropout=0, unroll=False and use_bias=True (`CUDNN_LSTM_ARGS`), so on a
    GPU the TF backend runs it as `CudnnRNNV3`. Regularise with dropout on the inputs and outputs of the LSTMs
    instead of recurrent dropout: `input_dropout` (before the first layer), `dropout` (between layers),
    `output_dropout` (after the last); with `variational_dropout` each sequence keeps one mask across time (Gal &
    Ghahramani 2016). A mask passed in must be right-padded with no all-padding row: build it with
    `lstm_apps.layers.lengths_to_mask`.

    State: `stateful=True` carries the final states of one batch into the next (the batch size must be fixed;
    `reset_state()` starts over). `return_state=True` makes `call` return `[outputs, *states]` and accept
    `initial_state` (the same flat list: h, c per layer and direction), for step-by-step decoding.

    Args:
        units: int. Units of every LSTM (per direction).
        num_layers: int. Number of stacked LSTM layers. Defaults to `1`.
        bidirectional: bool. Wrap every LSTM in `keras.layers.Bidirectional` (outputs concatenated, so
            `2 * units` features). Defaults to `False`.
        dropout: float. Dropout rate between consecutive LSTM layers. Defaults to `0.0`.
        return_sequences: bool. Return the last layer's output at every step (`True`) or only at the last
            step (`False`, the default). Inner layers always return sequences.
        input_dropout: float. Dropout rate on the stack's input. Defaults to `0.0`.
        output_dropout: float. Dropout rate on the stack's output. Defaults to `0.0`.
        variational_dropout: bool. Share each dropout mask across time steps (noise shape
            `(batch, 1, features)`) instead of drawing one per step. Defaults to `False`.
        stateful: bool. Carry the final states of a batch into the next (needs a fixed batch size). Defaults to
            `False`.
        return_state: bool. Also return the final states and accept `initial_state`. Defaults to `False`.
        **kwargs: other keyword arguments passed to `keras.layers.Layer`, including `name`, `trainable` and
            `dtype`.

    Call arguments:
        inputs: float tensor `(batch, time, features)`.
        mask: optional bool tensor `(batch, time)`, right-padded (True for real steps), no all-False row.
        training: bool. Dropout acts only when `True`.
        initial_state: optional flat list of `num_layers * states_per_layer` tensors `(batch, units)`: h, c for
            each layer (forward then backward when bidirectional). Only with `return_state=True`.

    Input shape: `(batch, time, features)`.
    Output shape: `(batch, time, width)` with `return_sequences=True`, else `(batch, width)`, where `width` is
    `units` (`2 * units` when bidirectional); with `return_state=True` a list `[outputs, *states]`, each state
    `(batch, units)`.

    Example:
    >>> stack = LSTMStack(units=64, num_layers=2, bidirectional=True, dropout=0.1)
    >>> tuple(stack(keras.ops.zeros((4, 10, 8))).shape)
    (4, 128)
    >>> decoder = LSTMStack(units=16, num_layers=2, return_sequences=True, return_state=True)
    >>> outputs, *states = decoder(keras.ops.zeros((4, 10, 8)))
    >>> tuple(outputs.shape), len(states), tuple(states[0].shape)
    ((4, 10, 16), 4, (4, 16))
    """

    def __init__(self, units, num_layers=1, bidirectional=False, dropout=0.0, return_sequences=False,
                 input_dropout=0.0, output_dropout=0.0, variational_dropout=False, stateful=False,
                 return_state=False, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.return_sequences = return_sequences
        self.input_dropout = input_dropout
        self.output_dropout = output_dropout
        self.variational_dropout = variational_dropout
        self.stateful = stateful
        self.return_state = return_state
        self.supports_masking = True
        self.recurrent_layers = []
        for index in range(num_layers):
            keep_sequence = return_sequences or index < num_layers - 1
            layer = LSTM(units, return_sequences=keep_sequence, return_state=return_state, stateful=stateful,
                         name=f"lstm_{index}", **CUDNN_LSTM_ARGS)
            if bidirectional:
                layer = keras.layers.Bidirectional(layer, name=f"bidirectional_{index}")
            self.recurrent_layers.append(layer)
        # dropout before layer i (i = 0: input_dropout), and after the last layer (output_dropout)
        self.dropout_layers = [self._dropout_layer(dropout, sequences=True, name=f"dropout_{index}")
                               for index in range(num_layers - 1)]
        self.input_dropout_layer = self._dropout_layer(input_dropout, sequences=True, name="input_dropout")
        self.output_dropout_layer = self._dropout_layer(output_dropout, sequences=return_sequences,
                                                        name="output_dropout")

    def _dropout_layer(self, rate, sequences, name):
        noise_shape = (None, 1, None) if self.variational_dropout and sequences else None
        return keras.layers.Dropout(rate, noise_shape=noise_shape, name=name)

    @property
    def states_per_layer(self):
        return 4 if self.bidirectional else 2

    def build(self, input_shape):
        shape = tuple(input_shape)
        self.input_dropout_layer.build(shape)
        for index, layer in enumerate(self.recurrent_layers):
            layer.build(shape)
            shape = self._sequence_shape(shape, last=index == self.num_layers - 1)
            if index < self.num_layers - 1:
                self.dropout_layers[index].build(shape)
        self.output_dropout_layer.build(shape)
        self.built = True

    def _sequence_shape(self, shape, last):
        width = self.units * (2 if self.bidirectional else 1)
        return (shape[0], shape[1], width) if (self.return_sequences or not last) else (shape[0], width)

    def call(self, inputs, mask=None, training=None, initial_state=None):
        outputs = self.input_dropout_layer(inputs, training=training)
        states = []
        for index, layer in enumerate(self.recurrent_layers):
            if index > 0:
                outputs = self.dropout_layers[index - 1](outputs, training=training)
            layer_state = None
            if initial_state is not None:
                first = index * self.states_per_layer
                layer_state = list(initial_state[first:first + self.states_per_layer])
            outputs = layer(outputs, mask=mask, training=training, initial_state=layer_state)
            if self.return_state:
                outputs, *layer_states = outputs
                states.extend(layer_states)
        outputs = self.output_dropout_layer(outputs, training=training)
        return [outputs, *states] if self.return_state else outputs

    def reset_state(self):
        """Zero the carried states of a stateful stack (at the start of every pass over a corpus)."""
        for layer in self.recurrent_layers:
            layer.reset_state()

    def compute_mask(self, inputs, mask=None):
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * (self.num_layers * self.states_per_layer)
        return output_mask

    def compute_output_shape(self, input_shape):
        shape = self._sequence_shape(tuple(input_shape), last=True)
        if self.return_state:
            state = (input_shape[0], self.units)
            return [shape] + [state] * (self.num_layers * self.states_per_layer)
        return shape

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, num_layers=self.num_layers, bidirectional=self.bidirectional,
                      dropout=self.dropout, return_sequences=self.return_sequences,
                      input_dropout=self.input_dropout, output_dropout=self.output_dropout,
                      variational_dropout=self.variational_dropout, stateful=self.stateful,
                      return_state=self.return_state)
        return config
