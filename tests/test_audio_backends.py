"""Audio backend registry: unknown names and a missing tensorflow-io fail in one line, before any graph is built.

Runs everywhere (no tensorflow-io needed): its absence is simulated where it is installed.
"""
import subprocess
import sys
from pathlib import Path

import pytest

from lstm_apps.errors import ConfigError
from lstm_apps.inputs import audio, audio_tfio


@pytest.fixture
def no_tensorflow_io(monkeypatch):
    """tensorflow-io as if not installed: `import tensorflow_io` raises ImportError, no ops cached."""
    for name in ["tensorflow_io"] + [n for n in sys.modules if n.startswith("tensorflow_io.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setattr(audio_tfio, "_ops", None)


def test_registry_names_the_backends():
    assert set(audio.AUDIO_BACKENDS) == {"tf", "tfio"}


def test_tfio_backend_without_tensorflow_io_is_one_line_config_error(no_tensorflow_io, tmp_path):
    with pytest.raises(ConfigError) as caught:
        audio.load_waveform_dataset([tmp_path / "a.flac"], 16000, 16000, backend="tfio")
    message = str(caught.value)
    assert message.startswith("data.audio_backend: tfio needs tensorflow-io 0.37.1 with TensorFlow <= 2.17")
    assert "pip install tensorflow-cpu==2.17.1 tensorflow-io==0.37.1" in message and "not installed" in message
    assert "\n" not in message
    with pytest.raises(ConfigError, match="tensorflow-io 0.37.1"):
        audio_tfio.decode_file("a.flac")
    with pytest.raises(ConfigError, match="tensorflow-io 0.37.1"):
        audio_tfio.resample([0.0, 1.0], 16000, 8000)


def test_unknown_backend_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"data.audio_backend: expected one of tf, tfio, got 'sox'"):
        audio.load_waveform_dataset([tmp_path / "a.wav"], 16000, 16000, backend="sox")


def test_default_backend_does_not_import_tensorflow_io(fsdd_dir):
    """The package never needs tensorflow-io: the default path, run in a fresh interpreter, leaves it unimported."""
    path = sorted((fsdd_dir / "recordings").glob("*.wav"))[0]
    code = ("import sys; from lstm_apps.inputs import audio; "
            f"out = list(audio.load_waveform_dataset([{str(path)!r}], 8000, 8000).as_numpy_iterator()); "
            "assert out[0].shape == (8000,); print('tensorflow_io' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "False"
