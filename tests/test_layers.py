from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from lstm_apps.errors import DataError
from lstm_apps.layers import (AttentionPooling, LSTMStack, LogMelSpectrogram, ReversibleEmbedding, SpecAugment,
                              lengths_to_mask, pad_right)

DATA = Path(__file__).resolve().parent / "data"


def _roundtrip(model, tmp_path, inputs):
    path = tmp_path / "m.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(model.predict(inputs, verbose=0), restored.predict(inputs, verbose=0), atol=1e-6)
    return restored


def test_lstm_stack_shapes_and_serialization(tmp_path):
    inputs = keras.Input((7, 5))
    outputs = LSTMStack(6, num_layers=2, bidirectional=True, dropout=0.3)(inputs)
    model = keras.Model(inputs, outputs)
    assert model.output_shape == (None, 12)
    x = np.random.default_rng(0).normal(size=(3, 7, 5)).astype("float32")
    restored = _roundtrip(model, tmp_path, x)
    assert restored.layers[1].get_config()["num_layers"] == 2


def test_lstm_stack_matches_plain_keras_lstms():
    """The stack is exactly LSTM -> LSTM (dropout only acts in training)."""
    x = np.random.default_rng(1).normal(size=(2, 4, 3)).astype("float32")
    stack = LSTMStack(5, num_layers=2)
    out = stack(x).numpy()
    first, second = stack.recurrent_layers
    np.testing.assert_allclose(out, second(first(x)).numpy(), atol=1e-6)


def test_lstm_stack_respects_right_padded_mask():
    """Masked steps do not change the final output: padding a sequence leaves its result unchanged."""
    stack = LSTMStack(4, num_layers=2, return_sequences=False)
    x = np.random.default_rng(2).normal(size=(1, 3, 2)).astype("float32")
    padded = np.concatenate([x, np.full((1, 2, 2), 9.0, "float32")], axis=1)
    mask = lengths_to_mask([3], 5)
    np.testing.assert_allclose(stack(x).numpy(), stack(padded, mask=mask).numpy(), atol=1e-6)


def test_padding_helpers_reject_empty_sequences():
    assert pad_right([[1, 2, 3], [4]]).tolist() == [[1, 2, 3], [4, 0, 0]]
    with pytest.raises(DataError, match="sequence 1 is empty"):
        pad_right([[1], []], source="batch.txt")
    assert lengths_to_mask([2, 1], 3).numpy().tolist() == [[True, True, False], [True, False, False]]
    with pytest.raises(tf.errors.InvalidArgumentError, match="has length 0"):
        lengths_to_mask([2, 0], 3)


def test_attention_pooling_is_the_softmax_weighted_sum(tmp_path):
    x = np.random.default_rng(3).normal(size=(2, 5, 4)).astype("float32")
    layer = AttentionPooling(return_attention=True)
    pooled, weights = (t.numpy() for t in layer(x))
    query = layer.query(x[:, 2]).numpy()  # middle step of 5
    scores = np.einsum("btf,bf->bt", x, query)
    expected_weights = np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)
    np.testing.assert_allclose(weights, expected_weights, rtol=1e-5)
    np.testing.assert_allclose(pooled, np.einsum("bt,btf->bf", expected_weights, x), rtol=1e-5, atol=1e-6)
    inputs = keras.Input((5, 4))
    _roundtrip(keras.Model(inputs, AttentionPooling()(inputs)), tmp_path, x)


def test_spec_augment_masks_only_in_training():
    features = tf.ones((4, 50, 20))
    layer = SpecAugment(time_masks=2, max_time_width=6, freq_masks=2, max_freq_width=4, seed=0)
    np.testing.assert_array_equal(layer(features, training=False).numpy(), features.numpy())
    masked = layer(features, training=True).numpy()
    zero_fraction = (masked == 0).mean()
    assert 0 < zero_fraction < 0.6
    # masks are whole bands: a masked frame is zero in every bin
    frame_zero = (masked == 0).all(axis=2)
    assert frame_zero.any()


def test_log_mel_layer_serializes(tmp_path):
    inputs = keras.Input((8000,))
    model = keras.Model(inputs, LogMelSpectrogram(sample_rate=8000, num_mfcc=13)(inputs))
    assert model.output_shape == (None, 98, 13)
    x = np.random.default_rng(4).normal(scale=0.1, size=(2, 8000)).astype("float32")
    _roundtrip(model, tmp_path, x)


def test_per_clip_normalization_centres_voiced_frames_and_zeroes_padding(tmp_path):
    from lstm_apps.layers import PerClipNormalization

    x = np.random.default_rng(5).normal(size=(2, 6, 3)).astype("float32") + 5.0
    x[0, 4:] = np.log(1e-6)  # zero padding after 4 frames of the first clip
    y = PerClipNormalization()(x).numpy()
    np.testing.assert_allclose(y[0, :4], x[0, :4] - x[0, :4].mean(0), atol=1e-5)
    np.testing.assert_array_equal(y[0, 4:], 0.0)
    np.testing.assert_allclose(y[1], x[1] - x[1].mean(0), atol=1e-5)
    inputs = keras.Input((6, 3))
    _roundtrip(keras.Model(inputs, PerClipNormalization()(inputs)), tmp_path, x)


def test_per_clip_normalization_then_mfcc_equals_the_dct_of_the_normalised_log_mel(tmp_path):
    import scipy.fft

    from lstm_apps.layers import PerClipNormalization

    x = np.random.default_rng(6).normal(size=(2, 6, 8)).astype("float32") + 5.0
    x[0, 4:] = np.log(1e-6)
    expected_log_mel = PerClipNormalization()(x).numpy()
    y = PerClipNormalization(num_mfcc=5)(x).numpy()
    reference = scipy.fft.dct(expected_log_mel, type=2, axis=-1)[..., :5] / np.sqrt(2 * 8)  # TF's MFCC scaling
    np.testing.assert_allclose(y, reference, atol=1e-4)
    np.testing.assert_allclose(y[0, :4].mean(0), 0.0, atol=1e-4)  # the clip's mean MFCC is removed
    np.testing.assert_array_equal(y[0, 4:], 0.0)  # padding stays silent
    inputs = keras.Input((6, 8))
    _roundtrip(keras.Model(inputs, PerClipNormalization(num_mfcc=5)(inputs)), tmp_path, x)


def test_reversible_embedding_is_keras_reversible_embedding_plus_a_bias(tmp_path):
    layer = ReversibleEmbedding(7, 3, word_dropout=0.5, name="embedding")
    assert isinstance(layer, keras.layers.ReversibleEmbedding)
    ids = np.array([[1, 2, 0], [6, 5, 4]], "int32")
    hidden = layer(ids).numpy()
    np.testing.assert_array_equal(hidden, layer.embeddings.numpy()[ids])  # word dropout: training only
    layer.bias.assign(np.arange(7, dtype="float32"))
    logits = layer(hidden, reverse=True).numpy()
    np.testing.assert_allclose(logits, hidden @ layer.embeddings.numpy().T + np.arange(7), rtol=1e-6, atol=1e-6)
    assert layer.compute_mask(ids) is None
    plain = ReversibleEmbedding(7, 3, output_bias=False)
    plain.build()
    assert [w.name for w in plain.weights] == ["embeddings"] and not hasattr(plain, "bias")
    with pytest.raises(ValueError, match="produces no mask"):
        ReversibleEmbedding(7, 3, mask_zero=True)
    with pytest.raises(ValueError, match="output_bias=False"):
        ReversibleEmbedding(7, 3, logit_soft_cap=30.0)
    tokens = keras.Input((None,), dtype="int32")
    model = keras.Model(tokens, layer(layer(tokens), reverse=True))
    _roundtrip(model, tmp_path, ids)


def test_reversible_embedding_word_dropout_drops_whole_word_types():
    layer = ReversibleEmbedding(50, 4, word_dropout=0.5, embeddings_initializer="ones")
    ids = np.tile(np.arange(50, dtype="int32"), (3, 1))
    out = layer(ids, training=True).numpy()
    dropped = (out == 0).all(axis=-1)
    assert (dropped == dropped[0]).all() and 0 < dropped[0].sum() < 50  # the same word types in every row
    np.testing.assert_allclose(out[~dropped], 2.0)  # the rest scaled by 1 / (1 - rate)


def test_reversible_embedding_loads_files_saved_by_the_earlier_layer():
    """tests/data/reversible_embedding_v1.* were written by the layer before it subclassed
    keras.layers.ReversibleEmbedding (see make_reversible_embedding_fixture.py): old runs must load unchanged."""
    expected = np.load(DATA / "reversible_embedding_v1.npz")
    model = keras.saving.load_model(DATA / "reversible_embedding_v1.keras")
    embedding = model.get_layer("embedding")
    assert type(embedding) is ReversibleEmbedding
    assert embedding.word_dropout == 0.2 and embedding.output_bias and embedding.tie_weights
    assert not hasattr(model.get_layer("target_embedding"), "bias")
    weights = model.get_weights()
    assert len(weights) == len([key for key in expected.files if key.startswith("weight_")])
    for index, value in enumerate(weights):
        np.testing.assert_array_equal(value, expected[f"weight_{index}"])
    lm_logits, plain_logits = model.predict(expected["inputs"], verbose=0)
    np.testing.assert_allclose(lm_logits, expected["lm_logits"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(plain_logits, expected["plain_logits"], rtol=0, atol=1e-6)
