"""Embedding -> LSTMStack -> dropout -> output layer tied to the embedding (a projection when sizes differ).

One builder, two shapes of the same network (same layer names, so weights copy across):
- training: `stateful=True` with a fixed batch size; tokens [batch, bptt] -> logits. The LSTM states carry across
  BPTT windows; `reset_states` zeroes them at the start of every pass.
- inference: tokens [batch, time] (0 = padding, right-padded) and the LSTM states in, logits and the new states
  out; any batch size. Evaluation, generation, scoring and the exported model use it.
"""
import keras

from lstm_apps import distribute
from lstm_apps.inputs.text import PAD_ID
from lstm_apps.layers import LSTMStack, ReversibleEmbedding


def build_network(cfg, vocab_size, batch_size=None, stateful=False):
    model_cfg = cfg["model"]
    embedding = ReversibleEmbedding(vocab_size, model_cfg["embedding_dim"], word_dropout=model_cfg["embedding_dropout"],
                                    output_bias=True, embeddings_initializer=keras.initializers.RandomUniform(-0.1, 0.1),
                                    name="embedding")
    stack = LSTMStack(model_cfg["units"], model_cfg["layers"], return_sequences=True,
                      input_dropout=model_cfg["dropout"], dropout=model_cfg["dropout"],
                      output_dropout=model_cfg["dropout"], variational_dropout=model_cfg["variational"],
                      stateful=stateful, return_state=not stateful, name="lstm_stack")
    tokens = keras.Input(batch_shape=(batch_size, None), dtype="int32", name="tokens")
    hidden = embedding(tokens)
    if stateful:
        with distribute.per_replica_state():  # under a strategy, each replica carries the states of its own rows
            outputs = stack(hidden)
        states = []
    else:
        state_inputs = [keras.Input(batch_shape=(batch_size, model_cfg["units"]), name=f"state_{index}")
                        for index in range(model_cfg["layers"] * stack.states_per_layer)]
        outputs, *states = stack(hidden, mask=keras.ops.not_equal(tokens, PAD_ID), initial_state=state_inputs)
    if model_cfg["tie_embeddings"]:
        if model_cfg["units"] != model_cfg["embedding_dim"]:
            outputs = keras.layers.Dense(model_cfg["embedding_dim"], name="projection")(outputs)
        logits = embedding(outputs, reverse=True)
    else:
        logits = keras.layers.Dense(vocab_size, name="output")(outputs)
    if stateful:
        return keras.Model(tokens, logits, name="language_model")
    return keras.Model([tokens, *state_inputs], [logits, *states], name="language_model_inference")


def set_output_bias(model, log_probs):
    """Start the output bias at the training split's log unigram probabilities: the untrained model then already
    predicts word frequencies (perplexity = the unigram model's) instead of a uniform distribution, which Adam's
    small steps would take hundreds of batches to learn."""
    names = {layer.name for layer in model.layers}
    layer = model.get_layer("output" if "output" in names else "embedding")
    layer.bias.assign(log_probs.astype("float32"))


def inference_network(cfg, trained):
    """The stateless network with the weights of a trained (stateful) one."""
    vocab_size = trained.get_layer("embedding").input_dim
    network = build_network(cfg, vocab_size)
    network.set_weights(trained.get_weights())
    return network


def zero_states(network, batch_size):
    """Initial LSTM states for `network` (an inference network) and a batch."""
    return [keras.ops.zeros((batch_size, spec.shape[-1])) for spec in network.inputs[1:]]


def reset_states(model):
    model.get_layer("lstm_stack").reset_state()


class ResetStates(keras.callbacks.Callback):
    """Zero the carried LSTM states at the start of every training epoch and every validation pass."""

    def on_epoch_begin(self, epoch, logs=None):
        reset_states(self.model)

    def on_test_begin(self, logs=None):
        reset_states(self.model)
