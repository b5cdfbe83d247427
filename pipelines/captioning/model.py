"""Two captioning models on the shared layers, registered in ARCHITECTURES (`model.name`).

- `s2vt` (Venugopalan et al. 2015, "Sequence to Sequence - Video to Text"): one LSTM stack reads the frame
  features, then emits the words. Each step's input is [frame features; word embedding] with the half that does
  not apply set to zero (S2VT's padding scheme), so encoding and decoding use the same weights.
- `sa-lstm` (after Yao et al. 2015, temporal attention): an LSTM encoder over the frames, and the shared attention
  decoder (`lstm_apps.seq2seq`) attending over every frame's encoder output while it emits the words.

`build_captioner` returns the model `fit` trains: [clip, words_in] -> logits, where clip is features
float32[batch, T, D], or frames uint8[batch, T, H, W, 3] with the trainable `conv` frame encoder
(`frame_encoder`, applied to every frame). Decoding (`pipelines.captioning.inference.Captioner`) steps the same layers
through the architecture's `encode` and `step`.
"""
import keras
from keras import ops

from lstm_apps.layers import LSTMStack
from lstm_apps.seq2seq import build_attention_decoder
from pipelines.captioning.features import TRAINABLE


def build_frame_encoder(features_cfg):
    """The small trainable frame encoder (`features.backbone: conv`): uint8 frame [H, W, 3] -> features [D].
    Strided convolutions keep where things are (no global pooling), which the direction of motion needs."""
    size = features_cfg["size"]
    frame = keras.Input((size, size, 3), dtype="uint8", name="frame")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="rescale")(frame)  # [-1, 1]
    for index, filters in enumerate(features_cfg["conv_filters"]):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu", name=f"conv_{index}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    features = keras.layers.Dense(features_cfg["conv_dim"], activation="relu", name="frame_features")(x)
    return keras.Model(frame, features, name="frame_encoder")


def zero_states(features, units, count):
    """`count` zero LSTM states [batch, units] for a batch of features (S2VT starts from zeros)."""
    zeros = ops.zeros_like(features[:, 0, :1])
    return [ops.repeat(zeros, units, axis=1) for _ in range(count)]


class S2VT:
    """One stack over [frame; 0] steps, then [0; word] steps."""

    def outputs(self, model_cfg, vocab_size, features, words):
        units, layers, dropout, width = (model_cfg[k] for k in ("units", "layers", "dropout", "embedding_dim"))
        projected = keras.layers.Dense(width, name="feature_projection")(
            keras.layers.Dropout(dropout, name="feature_dropout")(features))
        embedded = keras.layers.Embedding(vocab_size, width, name="word_embedding")(words)
        stack = LSTMStack(units, layers, return_sequences=True, return_state=True, dropout=dropout, name="stack")
        _, *states = stack(self.frame_steps(projected), initial_state=zero_states(features, units, 2 * layers))
        # no mask: words are right-padded, so the outputs at real words never see the padding after them, and the
        # loss skips the padding positions
        outputs = stack(self.word_steps(embedded), initial_state=states)[0]
        outputs = keras.layers.Dropout(dropout, name="output_dropout")(outputs)
        return keras.layers.Dense(vocab_size, name="output")(outputs)

    @staticmethod
    def frame_steps(projected):
        return ops.concatenate([projected, ops.zeros_like(projected)], axis=-1)

    @staticmethod
    def word_steps(embedded):
        return ops.concatenate([ops.zeros_like(embedded), embedded], axis=-1)

    def encode(self, model, features):
        """(context, states) after reading the frames: S2VT's whole context is its states."""
        stack = model.get_layer("stack")
        projected = model.get_layer("feature_projection")(features)
        _, *states = stack(self.frame_steps(projected), initial_state=zero_states(
            features, stack.units, stack.num_layers * stack.states_per_layer), training=False)
        return (), states

    def step(self, model, context, tokens, states):
        embedded = model.get_layer("word_embedding")(tokens)
        outputs, *states = model.get_layer("stack")(self.word_steps(embedded), initial_state=states, training=False)
        return model.get_layer("output")(outputs[:, -1]), states


class SALSTM:
    """An encoder stack over the frames; the shared attention decoder over its outputs."""

    def outputs(self, model_cfg, vocab_size, features, words):
        encoder = self.build_encoder(model_cfg, features.shape[-1])
        decoder = build_attention_decoder(vocab_size, model_cfg["embedding_dim"], model_cfg["units"],
                                          model_cfg["layers"], model_cfg["units"], model_cfg["dropout"],
                                          model_cfg["attention"])
        memory, *states = encoder(features)
        return decoder([words, memory, frames_mask(features), *states])[0]

    @staticmethod
    def build_encoder(model_cfg, feature_dim):
        features = keras.Input((None, feature_dim), name="features")
        dropout = model_cfg["dropout"]
        projected = keras.layers.Dense(model_cfg["embedding_dim"], name="feature_projection")(
            keras.layers.Dropout(dropout, name="feature_dropout")(features))
        memory, *states = LSTMStack(model_cfg["units"], model_cfg["layers"], return_sequences=True,
                                    return_state=True, dropout=dropout, output_dropout=dropout,
                                    name="encoder_stack")(projected)
        return keras.Model(features, [memory, *states], name="encoder")

    def encode(self, model, features):
        memory, *states = model.get_layer("encoder")(features, training=False)
        return (memory, frames_mask(memory)), states

    def step(self, model, context, tokens, states):
        memory, mask = context
        logits, _, *states = model.get_layer("decoder")([tokens, memory, mask, *states], training=False)
        return logits[:, -1], states


def frames_mask(memory):
    """Every frame is real: a mask of ones [batch, T]."""
    return ops.ones_like(memory[..., 0], dtype="bool")


# model.name -> the model
ARCHITECTURES = {"s2vt": S2VT(), "sa-lstm": SALSTM()}


def build_captioner(cfg, vocab_size, clip_shape):
    """The trained model: [clip (T, D) features or (T, H, W, 3) frames, words_in] -> logits [batch, t, vocab]."""
    model_cfg = cfg["model"]
    clip = keras.Input(tuple(clip_shape), dtype="uint8" if cfg["features"]["backbone"] == TRAINABLE else "float32",
                       name="clip")
    words = keras.Input((None,), dtype="int32", name="words_in")
    features = clip
    if cfg["features"]["backbone"] == TRAINABLE:
        features = keras.layers.TimeDistributed(build_frame_encoder(cfg["features"]), name="frames")(clip)
    logits = ARCHITECTURES[model_cfg["name"]].outputs(model_cfg, vocab_size, features, words)
    return keras.Model([clip, words], logits, name=f"captioner_{model_cfg['name'].replace('-', '_')}")
