"""A stack of LSTM layers that the TF backend runs on the cuDNN kernel whenever a GPU is present."""
import keras

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
    """`num_layers` LSTM layers (optionally bidirectional) with dropout between them, all cuDNN-eligible.

    Every LSTM uses tanh/sigmoid, recurrent_dropout=0, unroll=False and use_bias=True, so on a GPU the TF backend
    runs it as `CudnnRNNV3`; regularise with `dropout` (applied to the outputs of every layer but the last) instead of
    recurrent dropout. A mask passed in (or propagated from an Embedding with `mask_zero=True`) must be right-padded
    with no all-padding row: build it with `lstm_apps.layers.masking.lengths_to_mask`.

    Example:
    >>> stack = LSTMStack(units=64, num_layers=2, bidirectional=True, dropout=0.1)
    >>> stack(keras.ops.zeros((4, 10, 8))).shape
    (4, 128)
    """

    def __init__(self, units, num_layers=1, bidirectional=False, dropout=0.0, return_sequences=False, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.return_sequences = return_sequences
        self.supports_masking = True
        self.recurrent_layers = []
        for index in range(num_layers):
            keep_sequence = return_sequences or index < num_layers - 1
            layer = keras.layers.LSTM(units, return_sequences=keep_sequence, name=f"lstm_{index}", **CUDNN_LSTM_ARGS)
            if bidirectional:
                layer = keras.layers.Bidirectional(layer, name=f"bidirectional_{index}")
            self.recurrent_layers.append(layer)
        self.dropout_layers = [keras.layers.Dropout(dropout, name=f"dropout_{index}") for index in range(num_layers - 1)]

    def build(self, input_shape):
        shape = tuple(input_shape)
        for index, layer in enumerate(self.recurrent_layers):
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
            if index < self.num_layers - 1:
                self.dropout_layers[index].build(shape)
        self.built = True

    def call(self, inputs, mask=None, training=None):
        outputs = inputs
        for index, layer in enumerate(self.recurrent_layers):
            if index > 0:
                outputs = self.dropout_layers[index - 1](outputs, training=training)
            outputs = layer(outputs, mask=mask, training=training)
        return outputs

    def compute_mask(self, inputs, mask=None):
        return mask if self.return_sequences else None

    def compute_output_shape(self, input_shape):
        width = self.units * (2 if self.bidirectional else 1)
        if self.return_sequences:
            return (input_shape[0], input_shape[1], width)
        return (input_shape[0], width)

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, num_layers=self.num_layers, bidirectional=self.bidirectional,
                      dropout=self.dropout, return_sequences=self.return_sequences)
        return config
