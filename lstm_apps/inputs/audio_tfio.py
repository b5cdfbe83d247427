"""Optional tensorflow-io audio backend: FLAC, OGG (Vorbis), MP3 and WAV decoded in the graph, and tfio resampling.

Why: the default backend decodes only WAV in the graph and reads other formats through soundfile in Python
(`tf.numpy_function`), which holds the GIL and cannot be part of a saved graph. tensorflow-io decodes them with
native ops. Its last release (0.37.1) loads those ops only with TensorFlow <= 2.17, so it is an extra
(`lstm-apps[tfio]`), imported lazily here, and proven in the `tfio` environment of tox.ini; nothing else in the
package needs it.
"""
import warnings

import tensorflow as tf

from lstm_apps.errors import ConfigError

_ops = None


def core_ops():
    """tensorflow-io's native ops, loaded on first use; ConfigError (one line) when they are missing or unloadable."""
    global _ops
    if _ops is None:
        try:
            with warnings.catch_warnings():  # tfio warns at import when its plugins do not fit this TensorFlow
                warnings.simplefilter("ignore")
                from tensorflow_io.python.ops import core_ops as ops
                ops.io_audio_readable_init  # the shared library is loaded lazily: force it now
        except ImportError:
            raise ConfigError(_needs("tensorflow-io is not installed")) from None
        except Exception as error:  # NotImplementedError from tfio's loader: undefined symbols in libtensorflow_io.so
            raise ConfigError(_needs(f"its ops do not load ({type(error).__name__})")) from None
        _ops = ops
    return _ops


def _needs(why):
    return (f"data.audio_backend: tfio needs tensorflow-io 0.37.1 with TensorFlow <= 2.17 "
            f"(pip install 'lstm-apps[tfio]' 'tensorflow-cpu==2.17.1' 'numpy<2', see the tfio env in tox.ini); "
            f"{why}, TensorFlow here is {tf.__version__}")


# tf.DType enum of the file's native samples (as the readable reports it) -> how to map them to [-1, 1].
# Integer PCM is divided by 2**(bits-1) as tf.audio.decode_wav and soundfile do, so 16-bit files decode identically.
_SAMPLE_TYPES = (
    (tf.int16, 1.0 / 32768.0, 0.0),
    (tf.int32, 1.0 / 2147483648.0, 0.0),
    (tf.uint8, 1.0 / 128.0, -1.0),
    (tf.float32, 1.0, 0.0),  # Vorbis, MP3 and float WAV decode to float already
)


def decode_file(path):
    """Audio file path -> (mono float32 samples in [-1, 1], int32 sample rate), in the graph; first channel kept.

    The format (WAV, FLAC, OGG Vorbis, MP3) is detected from the file's content by tensorflow-io's audio readable
    (the ops behind `tfio.audio.AudioIOTensor`), which also gives the sample rate: `tfio.audio.decode_flac` and the
    other byte decoders return samples only. Takes a path, not bytes, for that reason.
    """
    ops = core_ops()
    resource = ops.io_audio_readable_init(path)
    _, dtype, rate = ops.io_audio_readable_spec(resource)

    def reader(sample_type, scale, offset):
        def read():
            samples = tf.cast(ops.io_audio_readable_read(resource, 0, -1, dtype=sample_type)[:, 0], tf.float32)
            return samples * scale + offset if offset else samples * scale
        return read

    branches = [(tf.equal(dtype, t.as_datatype_enum), reader(t, s, o)) for t, s, o in _SAMPLE_TYPES]
    unsupported = tf.debugging.Assert(tf.reduce_any([p for p, _ in branches]),
                                      [tf.constant("unsupported sample type (tf.DType enum)"), dtype, path])
    with tf.control_dependencies([unsupported]):
        waveform = tf.case(branches)
    return tf.ensure_shape(waveform, [None]), tf.cast(rate, tf.int32)


def resample(waveform, rate_in, rate_out):
    """1-D waveform resampled in the graph by tfio's resampling op; identity when the rates match.

    Calls the op behind `tfio.audio.resample` on [samples, 1] directly: the wrapper's vectorized_map over a batch
    of one falls back to a while_loop and warns at every trace. The op (Speex, quality 4, one shot) delays its
    output by the filter's latency and cuts the tail to keep the length; the input is padded and the latency
    dropped, so the result lines up with, and has the length of, `lstm_apps.inputs.audio.resample` (FFT).
    Both low-pass below the new Nyquist frequency; they differ only in the transition band near it.
    """
    ops = core_ops()
    rate_in = tf.cast(rate_in, tf.int64)
    rate_out = tf.cast(rate_out, tf.int64)

    def _resample():
        length_in = tf.shape(waveform, out_type=tf.int64)[0]
        length_out = tf.maximum((length_in * rate_out + rate_in // 2) // rate_in, 1)
        latency = _speex_input_latency(rate_in, rate_out)
        padded = tf.pad(waveform, [[0, latency + rate_in // rate_out + 2]])
        output = ops.io_audio_resample(padded[:, tf.newaxis], rate_in=rate_in, rate_out=rate_out)[:, 0]
        skip = (latency * rate_out + rate_in // 2) // rate_in
        output = output[skip : skip + length_out]
        return tf.pad(output, [[0, length_out - tf.shape(output, out_type=tf.int64)[0]]])

    return tf.cond(tf.equal(rate_in, rate_out), lambda: tf.identity(waveform), _resample)


def _speex_input_latency(rate_in, rate_out):
    """Input samples by which Speex delays its output: half its filter (64 taps at quality 4, more when
    downsampling, rounded up to a multiple of 8), as speex_resampler_get_input_latency reports."""
    taps = tf.where(rate_in > rate_out, ((64 * rate_in // rate_out - 1) // 8) * 8 + 8, tf.constant(64, tf.int64))
    return taps // 2
