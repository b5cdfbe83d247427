"""Every LSTM the project builds must run on cuDNN when a GPU is present.

On this CPU-only machine we make Keras' TF backend believe a GPU is present and record the calls that reach its
cuDNN function (`keras.src.backend.tensorflow.rnn._cudnn_lstm`). The recorder then raises NotImplementedError,
which Keras treats as "cuDNN unavailable" and falls back to the generic loop, so the forward pass still completes.
These are private Keras internals: the test pins the Keras minor version it was written against.
"""
import itertools

import keras
import numpy as np
import pytest

from lstm_apps.config import build_config
from lstm_apps.layers import CUDNN_LSTM_ARGS
from pipelines.keywords.model import MODELS, build_model
from pipelines.keywords.task import TASK
from pipelines.language_model.model import build_network, zero_states
from pipelines.language_model.task import TASK as LM_TASK
from pipelines.captioning.model import ARCHITECTURES, build_captioner
from pipelines.captioning.task import TASK as CAPTIONING_TASK
from pipelines.translation.model import build_translator, parts
from pipelines.translation.task import TASK as TRANSLATION_TASK

PINNED_KERAS = "3.15."
# models whose LSTM layers run more than once per forward pass: S2VT's stack reads the frames, then the words
CALLS_PER_LAYER = {f"captioning/training/s2vt/layers={layers}": 2 for layers in (1, 2)}


def all_project_models():
    """(name, model, example input) for every model the project can build."""
    for name, bidirectional in itertools.product(MODELS, (False, True)):
        cfg = build_config(TASK.presets_dir, "quick",
                           overrides=[f"model.name={name}", f"model.bidirectional={str(bidirectional).lower()}"])
        normalizer = keras.layers.Normalization(axis=-1, mean=0.0, variance=1.0)
        model = build_model(cfg, num_classes=10, sample_rate=8000, num_samples=8000, normalizer=normalizer)
        yield f"keywords/{name}/bidirectional={bidirectional}", model, np.zeros((2, 8000), "float32")
    lm_cfg = build_config(LM_TASK.presets_dir, "full", overrides=["model.units=32", "model.embedding_dim=16"])
    tokens = np.array([[2, 5, 6, 7], [2, 8, 0, 0]], "int32")  # right-padded prompts, as generation feeds them
    yield "language-model/training", build_network(lm_cfg, 50, batch_size=2, stateful=True), tokens[:1].repeat(2, 0)
    inference = build_network(lm_cfg, 50)
    yield "language-model/inference", inference, [keras.ops.convert_to_tensor(tokens), *zero_states(inference, 2)]
    for layers in (1, 2):
        mt_cfg = build_config(TRANSLATION_TASK.presets_dir, "full",
                              overrides=["model.units=16", "model.embedding_dim=8", f"model.layers={layers}"])
        translator = build_translator(mt_cfg, 40, 50)
        source = np.array([[5, 6, 7, 3], [8, 3, 0, 0]], "int32")  # right-padded, <eos>-terminated
        target = np.array([[2, 9, 10, 11, 12], [2, 13, 0, 0, 0]], "int32")
        yield f"translation/training/layers={layers}", translator, [source, target]
        encoder, decoder = parts(translator)
        memory, *states = encoder(source)
        step = [keras.ops.convert_to_tensor(x) for x in (np.array([[9], [13]], "int32"), memory, source != 0, *states)]
        yield f"translation/decoder-step/layers={layers}", decoder, step  # one beam-search step
    words = np.array([[2, 5, 6, 7], [2, 8, 0, 0]], "int32")  # right-padded, <eos>-first captions
    for architecture, layers in itertools.product(ARCHITECTURES, (1, 2)):
        caption_cfg = build_config(CAPTIONING_TASK.presets_dir, "full", overrides=[
            f"model.name={architecture}", "model.units=16", "model.embedding_dim=8", f"model.layers={layers}"])
        captioner = build_captioner(caption_cfg, 30, (5, 12))
        yield f"captioning/training/{architecture}/layers={layers}", captioner, [np.zeros((2, 5, 12), "float32"), words]
        if architecture == "sa-lstm":
            memory, *states = captioner.get_layer("encoder")(np.zeros((2, 5, 12), "float32"))
            step = [keras.ops.convert_to_tensor(x) for x in (words[:, :1], memory, np.ones((2, 5), bool), *states)]
            yield f"captioning/decoder-step/sa-lstm/layers={layers}", captioner.get_layer("decoder"), step
    conv_cfg = build_config(CAPTIONING_TASK.presets_dir, "quick")  # frames through the trainable conv encoder
    yield "captioning/training/conv-frames", build_captioner(conv_cfg, 30, (3, 64, 64, 3)), [
        np.zeros((2, 3, 64, 64, 3), "uint8"), words]


def lstm_layers(model):
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, keras.layers.LSTM)]


@pytest.fixture
def cudnn_recorder(monkeypatch):
    assert keras.version().startswith(PINNED_KERAS), (
        f"this test patches Keras {PINNED_KERAS}x internals; re-check keras/src/backend/tensorflow/rnn.py "
        f"for Keras {keras.version()} and update PINNED_KERAS")
    import importlib

    rnn = importlib.import_module("keras.src.backend.tensorflow.rnn")

    calls = []

    def record(inputs, initial_state_h, initial_state_c, kernel, recurrent_kernel, bias, mask, *args):
        calls.append({"mask": mask})
        raise NotImplementedError  # Keras falls back to the generic kernel, as without a GPU

    monkeypatch.setattr(rnn, "_is_gpu_available", lambda: True)
    monkeypatch.setattr(rnn, "_cudnn_lstm", record)
    return calls


@pytest.mark.parametrize("training", [False, True])
def test_every_lstm_takes_the_cudnn_path(cudnn_recorder, training):
    checked = 0
    for name, model, example in all_project_models():
        layers = lstm_layers(model)
        assert layers, f"{name}: no LSTM found"
        for layer in layers:
            cell = layer.cell
            assert keras.activations.serialize(cell.activation) == CUDNN_LSTM_ARGS["activation"], name
            assert keras.activations.serialize(cell.recurrent_activation) == "sigmoid", name
            assert cell.recurrent_dropout == 0 and not layer.unroll and cell.use_bias, name
            assert layer.use_cudnn in ("auto", True), name
        cudnn_recorder.clear()
        model(example, training=training)
        expected = len(layers) * CALLS_PER_LAYER.get(name, 1)
        assert len(cudnn_recorder) == expected, (
            f"{name}: {len(cudnn_recorder)} of {expected} LSTM calls reached the cuDNN kernel")
        checked += 1
    assert checked == 2 * len(MODELS) + 2 + 4 + 4 + 2 + 1


def test_recorder_catches_a_non_cudnn_layer(cudnn_recorder):
    """The check can fail: an LSTM with recurrent_dropout never reaches cuDNN."""
    layer = keras.layers.LSTM(4, recurrent_dropout=0.1)
    layer(np.zeros((1, 3, 2), "float32"))
    assert cudnn_recorder == []
    keras.layers.LSTM(4)(np.zeros((1, 3, 2), "float32"))
    assert len(cudnn_recorder) == 1


def test_every_lstm_carries_both_kernels_into_exports():
    """Every LSTM the project builds is lstm_apps.layers.portable_lstm.LSTM, which exports trace with the cuDNN and
    the generic kernel together (tests/test_export_gpu.py); a plain keras.layers.LSTM would export one kernel only."""
    from lstm_apps.layers.portable_lstm import LSTM

    for name, model, _ in all_project_models():
        for layer in lstm_layers(model):
            assert type(layer) is LSTM and layer.uses_kernel_selection(training=False), f"{name}: {layer.name}"
