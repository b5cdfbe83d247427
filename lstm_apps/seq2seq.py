"""The attention decoder both encoder-decoder tasks share (translation over source words, captioning over frames).

An LSTM stack over the target words, started from the encoder's final states; Luong attention over the encoder's
memory applied after it (no input feeding, so training runs the whole target in one cuDNN call); the output layer,
optionally tied to the word embedding. Decoding steps the same model one token at a time.
"""
import keras
from keras import ops

from lstm_apps.layers import LSTMStack, LuongAttention, ReversibleEmbedding

PAD_ID = 0  # every task pads word ids with 0


def build_attention_decoder(vocab_size, embedding_dim, units, num_layers, memory_units, dropout,
                            attention="general", tie_embeddings=False, name="decoder"):
    """A Keras model: [words int32[batch, t], memory [batch, s, memory_units], memory_mask bool[batch, s],
    *states (h, c per layer, each [batch, units])] -> [logits [batch, t, vocab], attention weights [batch, t, s],
    *new states]."""
    words = keras.Input((None,), dtype="int32", name="target")
    memory = keras.Input((None, memory_units), name="memory")
    memory_mask = keras.Input((None,), dtype="bool", name="memory_mask")
    states = [keras.Input((units,), name=f"state_{index}") for index in range(2 * num_layers)]
    embedding = ReversibleEmbedding(vocab_size, embedding_dim, output_bias=tie_embeddings, name="target_embedding")
    stack = LSTMStack(units, num_layers, return_sequences=True, return_state=True, input_dropout=dropout,
                      dropout=dropout, name="decoder_stack")
    outputs, *new_states = stack(embedding(words), mask=ops.not_equal(words, PAD_ID), initial_state=states)
    attentional, weights = LuongAttention(embedding_dim if tie_embeddings else units, score=attention,
                                          name="attention")([outputs, memory, memory_mask])
    attentional = keras.layers.Dropout(dropout, name="output_dropout")(attentional)
    if tie_embeddings:
        logits = embedding(attentional, reverse=True)
    else:
        logits = keras.layers.Dense(vocab_size, name="output")(attentional)
    return keras.Model([words, memory, memory_mask, *states], [logits, weights, *new_states], name=name)
