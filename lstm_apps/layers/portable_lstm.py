"""LSTM layers whose exported graphs run on CPU and GPU servers: both kernels, TensorFlow's implementation selector.

Keras 3 picks the LSTM kernel when a function is traced: with a GPU present the graph holds only `CudnnRNNV3`, which
no CPU-only server can load; without one, only the generic loop, which a GPU server runs slowly. Inside
`portable_lstm_kernels()` (entered by `lstm_apps.export.write_saved_model` around tracing), `LSTM` traces both, as
tf_keras did (`lstm_with_backend_selection`): the graph calls the generic kernel, a `tf.function` with the
attributes `api_implements=<a name unique to this call>` and `api_preferred_device="CPU"`, and registers beside it
in the function library a cuDNN twin with the same name, `api_preferred_device="GPU"` and the same signature: the
inputs and weights as arguments (nothing captured), one result (`pack`: outputs, last output and states in one
tensor, so that Grappler never rewrites the call for an unused result and the pair stays swappable in a Session).
On a server, Grappler's implementation selector (a default Grappler pass, in a Session and in the functions of
`tf.saved_model.load`) swaps the call for the twin when the call is placed on a GPU; on a CPU the twin is never
instantiated, so the graph loads without a cuDNN kernel.

Outside that context `LSTM` is `keras.layers.LSTM` unchanged (training, `evaluate`, `predict --run-dir`: the
kernel Keras picks). Its class name is `LSTM` on purpose: Keras saves the weights of layers held in a list under
their class name in snake case (`lstm`), so weights saved before this class existed load into it.

The generic function is Keras's own loop (`keras.layers.RNN.inner_loop`, the cell reading the weights passed in
through `keras.StatelessScope`); the twin is what Keras's TF backend traces on a GPU (`_cudnn_lstm` in
keras/src/backend/tensorflow/rnn.py), written here with public TensorFlow ops only; tests/test_export_gpu.py checks
it op for op against Keras's. Both take and return batch-major tensors; only the layers' padding outputs differ,
as they do in Keras: with `return_sequences` and a mask, cuDNN writes zeros at the padding steps where the generic
loop repeats the last real output (or zeros, for `zero_output_for_mask`, which Bidirectional sets).

Example:
>>> import tensorflow as tf
>>> layer = LSTM(4, return_sequences=True)
>>> inputs = tf.TensorSpec([None, None, 3], tf.float32)
>>> with portable_lstm_kernels():
...     graph = tf.function(lambda x: layer(x)).get_concrete_function(inputs).graph
>>> library = graph.as_graph_def().library.function
>>> sorted(f.attr["api_preferred_device"].s.decode() for f in library if "api_implements" in f.attr)
['CPU', 'GPU']
>>> [n.op for f in library if f.attr["api_preferred_device"].s == b"GPU" for n in f.node_def if "Cudnn" in n.op]
['CudnnRNNV3']
>>> graph = tf.function(lambda x: layer(x)).get_concrete_function(inputs).graph  # outside: Keras's choice only
>>> [f for f in graph.as_graph_def().library.function if "api_implements" in f.attr]
[]
"""
import contextlib
import contextvars
import uuid

import keras
import tensorflow as tf

API_IMPLEMENTS = "api_implements"
API_PREFERRED_DEVICE = "api_preferred_device"
INTERFACE_PREFIX = "lstm_apps_lstm_"

_PORTABLE = contextvars.ContextVar("lstm_apps_portable_lstm_kernels", default=False)


@contextlib.contextmanager
def portable_lstm_kernels(enabled=True):
    """Within this context, `LSTM` layers traced into a graph carry both kernels (`enabled=False`: Keras's choice).

    Enter it around the tracing of the functions to export (`lstm_apps.export.write_saved_model` does). Eager calls
    and layers that Keras would never run on cuDNN (see `LSTM.uses_kernel_selection`) are not affected.
    """
    token = _PORTABLE.set(bool(enabled))
    try:
        yield
    finally:
        _PORTABLE.reset(token)


def portable_lstm_kernels_enabled():
    """Whether `portable_lstm_kernels()` is active here."""
    return _PORTABLE.get()


@keras.saving.register_keras_serializable(package="lstm_apps")
class LSTM(keras.layers.LSTM):
    """`keras.layers.LSTM` that, inside `portable_lstm_kernels()`, traces the cuDNN and the generic kernel together.

    Same arguments, config, weights and outputs as `keras.layers.LSTM`; see the module docstring.

    Args:
        units: int. Dimensionality of the output space.
        **kwargs: every other argument of `keras.layers.LSTM` (LSTMStack passes `CUDNN_LSTM_ARGS`,
            `return_sequences`, `return_state`, `stateful` and `name`).

    Example:
    >>> layer = LSTM(4, return_state=True)
    >>> outputs, h, c = layer(keras.ops.zeros((2, 3, 5)))
    >>> tuple(outputs.shape), tuple(h.shape), layer.uses_kernel_selection(training=False)
    ((2, 4), (2, 4), True)
    """

    def uses_kernel_selection(self, training=False):
        """Whether a trace of this layer inside `portable_lstm_kernels()` carries both kernels.

        Only where Keras itself would pick cuDNN on a GPU (`use_cudnn` "auto" or True, no recurrent dropout,
        tanh/sigmoid, no unroll, a bias) and at inference (`training` false), where no dropout mask is drawn.
        """
        cell = self.cell
        return (self.use_cudnn in ("auto", True) and not cell.recurrent_dropout and not training
                and cell.activation in (keras.activations.tanh, tf.tanh, keras.ops.tanh)
                and cell.recurrent_activation in (keras.activations.sigmoid, tf.sigmoid, keras.ops.sigmoid)
                and not self.unroll and cell.use_bias)

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if not (portable_lstm_kernels_enabled() and tf.inside_function() and self.uses_kernel_selection(training)):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        if keras.tree.is_nested(mask):
            mask = mask[0]
        last_output, outputs, h, c = self._selected_kernel_call(sequences, initial_state[0], initial_state[1], mask)
        return last_output, outputs, [h, c]

    def _selected_kernel_call(self, sequences, initial_h, initial_c, mask):
        """Call the generic kernel as an `api_implements` function; register its cuDNN twin beside it.

        Both functions take the inputs and weights as arguments and return one tensor, `pack`ed: Grappler swaps
        a pair only while their signatures match, and its function optimizer rewrites ("specialises") a call
        whose function has an unused output or a constant input, changing that function's signature. In a
        Session (TF Serving, `saved_model_cli`) that rewrite runs on the LSTM calls before the selector first
        sees them, once the signature function is inlined; so no output may go unused (there is one, which the
        layer reads) and no argument may be a constant node (each goes through an Identity).
        """
        cell = self.cell
        weights = [tf.convert_to_tensor(v) for v in (cell.kernel, cell.recurrent_kernel, cell.bias)]
        arguments = [tf.convert_to_tensor(sequences), tf.convert_to_tensor(initial_h),
                     tf.convert_to_tensor(initial_c), *weights]
        if mask is not None:
            arguments.append(tf.cast(mask, tf.bool))
        arguments = [tf.identity(argument) for argument in arguments]
        go_backwards, return_sequences = self.go_backwards, self.return_sequences

        def generic(sequences, initial_h, initial_c, kernel, recurrent_kernel, bias, mask=None):
            # Keras's own generic loop, the cell reading the weights passed in instead of the captured variables
            with keras.StatelessScope(state_mapping=[(cell.kernel, kernel), (cell.recurrent_kernel, recurrent_kernel),
                                                     (cell.bias, bias)]):
                last_output, outputs, states = keras.layers.RNN.inner_loop(
                    self, sequences, [initial_h, initial_c], mask, training=False)
            return pack(last_output, outputs, states[0], states[1])

        def cudnn(sequences, initial_h, initial_c, kernel, recurrent_kernel, bias, mask=None):
            return pack(*cudnn_lstm(sequences, initial_h, initial_c, kernel, recurrent_kernel, bias, mask,
                                    go_backwards=go_backwards, return_sequences=return_sequences))

        interface = f"{INTERFACE_PREFIX}{uuid.uuid4().hex}"
        signature = [tf.TensorSpec.from_tensor(argument) for argument in arguments]
        generic_function = _implementation(generic, interface, "CPU")
        cudnn_function = _implementation(cudnn, interface, "GPU")
        cudnn_function.get_concrete_function(*signature).add_to_graph()
        last_output, outputs, h, c = unpack(generic_function(*arguments))
        steps = sequences.shape[1] if return_sequences else 1
        outputs.set_shape([sequences.shape[0], steps, self.cell.units])
        return last_output, outputs, h, c


def pack(last_output, outputs, h, c):
    """One tensor `(batch, steps + 3, units)`: the outputs (steps = time, or 1 without return_sequences), then the
    last output, h and c, each one step."""
    return tf.concat([outputs, last_output[:, None], h[:, None], c[:, None]], axis=1)


def unpack(packed):
    """`(last_output, outputs, h, c)` from `pack`."""
    return packed[:, -3], packed[:, :-3], packed[:, -2], packed[:, -1]


def _implementation(function, interface, device):
    return tf.function(function, autograph=False, reduce_retracing=False,
                       experimental_attributes={API_IMPLEMENTS: interface, API_PREFERRED_DEVICE: device})


def cudnn_lstm(inputs, initial_h, initial_c, kernel, recurrent_kernel, bias, mask, go_backwards, return_sequences):
    """The cuDNN LSTM exactly as Keras 3's TF backend traces it on a GPU, batch-major, with public TF ops only.

    Transcribes `keras.src.backend.tensorflow.rnn._cudnn_lstm` with `time_major=False` (tests/test_export_gpu.py
    compares the two graphs). Returns `(last_output, outputs, h, c)`; `outputs` is `(batch, 1, units)` when not
    `return_sequences`, as the generic loop returns it. Only a GPU can run it.
    """
    if mask is not None:
        _assert_valid_mask(mask)
        sequence_lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
    else:
        sequence_lengths = tf.fill([tf.shape(inputs)[0]], tf.shape(inputs)[1])
    seq_axis, batch_axis = 1, 0
    # cuDNN expects a num_layers axis in the states: after the batch axis for batch-major inputs
    init_h = tf.expand_dims(initial_h, axis=seq_axis)
    init_c = tf.expand_dims(initial_c, axis=seq_axis)

    weights = tf.split(kernel, 4, axis=1)
    weights += tf.split(recurrent_kernel, 4, axis=1)
    # cuDNN has a second set of input biases: zeros, so that it computes the canonical LSTM
    full_bias = tf.concat((tf.zeros_like(bias), bias), 0)
    if tf.sysconfig.get_build_info()["is_rocm_build"]:
        # MIOpen orders the gates i, f, o, c (cuDNN and Keras: i, f, c, o)
        weights = [weights[x] for x in (0, 1, 3, 2, 4, 5, 7, 6)]
        full_bias = tf.split(full_bias, 8, axis=0)
        full_bias = [full_bias[x] for x in (0, 1, 3, 2, 4, 5, 7, 6)]
    params = _cudnn_params(weights, tf.split(full_bias, 8), shape=tf.constant([-1]))

    if go_backwards:
        # [1, 2, 3, 0, 0] -> cuDNN reads [3, 2, 1, 0, 0] -> [6, 5, 4, 0, 0] -> Keras's order [0, 0, 6, 5, 4]
        inputs = tf.reverse_sequence(inputs, sequence_lengths, seq_axis=seq_axis, batch_axis=batch_axis)
    outputs, h, c, _, _ = tf.raw_ops.CudnnRNNV3(
        input=inputs, input_h=init_h, input_c=init_c, params=params, is_training=True, rnn_mode="lstm",
        sequence_lengths=sequence_lengths, time_major=False)
    if go_backwards:
        outputs = tf.reverse_sequence(outputs, sequence_lengths, seq_axis=seq_axis, batch_axis=batch_axis)
        outputs = tf.reverse(outputs, axis=[seq_axis])
    h = tf.squeeze(h, axis=seq_axis)
    c = tf.squeeze(c, axis=seq_axis)
    # cuDNN writes zeros after the last real step; Keras's last output is the last real one, which is h
    last_output = h
    if not return_sequences:
        outputs = tf.expand_dims(last_output, axis=1)
    return last_output, outputs, h, c


def _cudnn_params(weights, biases, shape):
    """Keras's kernels (inputs x units) transposed and flattened, then the biases: cuDNN's one params vector."""
    weights = [tf.reshape(tf.transpose(w), shape) for w in weights]
    biases = [tf.reshape(b, shape) for b in biases]
    return tf.concat(weights + biases, axis=0)


def _assert_valid_mask(mask):
    """cuDNN reads sequence lengths: the mask must be right-padded with no all-padding row (Keras asserts it too)."""
    fully_masked = tf.reduce_any(tf.reduce_all(tf.logical_not(tf.cast(mask, tf.bool)), axis=1))
    count_of_true = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
    right_padded_mask = tf.sequence_mask(count_of_true, maxlen=tf.shape(mask)[1])
    right_padded = tf.reduce_all(tf.equal(tf.cast(mask, tf.bool), tf.cast(right_padded_mask, tf.bool)))
    tf.Assert(tf.logical_and(tf.logical_not(fully_masked), right_padded),
              ["You are passing a RNN mask that does not correspond to right-padded sequences, while using cuDNN, "
               "which is not supported. With cuDNN, RNN masks can only be used for right-padding, e.g. "
               "`[[True, True, False, False]]` would be a valid mask, but any mask that isn't just contiguous "
               "`True`'s on the left and contiguous `False`'s on the right would be invalid. You can pass "
               "`use_cudnn=False` to your RNN layer to stop using cuDNN (this may be slower)."])
