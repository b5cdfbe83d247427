"""Bidirectional LSTM encoder + LSTM decoder with Luong attention applied after it (no input feeding).

Three Keras models share one set of layers:
- `encoder`: source ids [batch, s] -> memory [batch, s, 2 * units] and the decoder's initial states (each layer's
  forward and backward final states, concatenated);
- `decoder`: target ids [batch, t], memory, memory_mask, states -> logits [batch, t, vocab], attention
  [batch, t, s], new states. In training it runs over the whole target at once (one cuDNN call); decoding steps it
  one token at a time with the same weights;
- `translator`: [source, target_in] -> logits, the model `fit` trains (the other two are its layers).
"""
import keras
from keras import ops

from lstm_apps.inputs.subwords import PAD_ID
from lstm_apps.layers import LSTMStack
from lstm_apps.seq2seq import build_attention_decoder


def build_translator(cfg, source_vocab, target_vocab):
    encoder = build_encoder(cfg, source_vocab)
    decoder = build_decoder(cfg, target_vocab)
    source = keras.Input((None,), dtype="int32", name="source")
    target = keras.Input((None,), dtype="int32", name="target_in")
    memory, *states = encoder(source)
    logits = decoder([target, memory, ops.not_equal(source, PAD_ID), *states])[0]
    return keras.Model([source, target], logits, name="translator")


def build_encoder(cfg, vocab_size):
    model_cfg = cfg["model"]
    source = keras.Input((None,), dtype="int32", name="source")
    embedded = keras.layers.Embedding(vocab_size, model_cfg["embedding_dim"], name="source_embedding")(source)
    stack = LSTMStack(model_cfg["units"], model_cfg["layers"], bidirectional=True, return_sequences=True,
                      return_state=True, input_dropout=model_cfg["dropout"], dropout=model_cfg["dropout"],
                      output_dropout=model_cfg["dropout"], name="encoder_stack")
    memory, *states = stack(embedded, mask=ops.not_equal(source, PAD_ID))
    bridged = []
    for layer in range(model_cfg["layers"]):  # per layer: forward h, c, backward h, c -> h, c of 2 * units
        forward_h, forward_c, backward_h, backward_c = states[4 * layer: 4 * layer + 4]
        bridged += [ops.concatenate([forward_h, backward_h], -1), ops.concatenate([forward_c, backward_c], -1)]
    return keras.Model(source, [memory, *bridged], name="encoder")


def build_decoder(cfg, vocab_size):
    model_cfg = cfg["model"]
    units = 2 * model_cfg["units"]  # the decoder starts from both encoder directions
    return build_attention_decoder(vocab_size, model_cfg["embedding_dim"], units, model_cfg["layers"], units,
                                   model_cfg["dropout"], model_cfg["attention"], model_cfg["tie_embeddings"])


def parts(translator):
    """(encoder, decoder) of a built or loaded translator."""
    return translator.get_layer("encoder"), translator.get_layer("decoder")
