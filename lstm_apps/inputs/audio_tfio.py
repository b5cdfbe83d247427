"""Optional tensorflow-io audio backend: FLAC, OGG (Vorbis), MP3 and WAV decoded in the graph, and tfio resampling.

Why: the default backend decodes only WAV in the graph and reads other formats through soundfile in Python
(`tf.numpy_function`), which holds the GIL and cannot be part of a saved graph. tensorflow-io decodes them with
native ops, from bytes too (`decode`, e.g. in a served model). Its last release (0.37.1) loads those ops only
with TensorFlow <= 2.17, so it is never an install requirement: it is imported lazily here and proven in the
`tfio` environment of tox.ini; nothing else in the package needs it.
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
                ops.io_audio_decode_flac  # the shared library is loaded lazily: force it now
        except ImportError:
            raise ConfigError(_needs("tensorflow-io is not installed")) from None
        except Exception as error:  # NotImplementedError from tfio's loader: undefined symbols in libtensorflow_io.so
            raise ConfigError(_needs(f"its ops do not load ({type(error).__name__})")) from None
        _ops = ops
    return _ops


def _needs(why):
    return (f"data.audio_backend: tfio needs tensorflow-io 0.37.1 with TensorFlow <= 2.17 "
            f"(pip install tensorflow-cpu==2.17.1 tensorflow-io==0.37.1 'numpy<2' as the tfio env in tox.ini does; "
            f"the package's own requirements keep TensorFlow 2.21); "
            f"{why}, TensorFlow here is {tf.__version__}")


def decode_file(path):
    """Audio file path -> (mono float32 samples in [-1, 1], int32 sample rate), in the graph (see `decode`)."""
    core_ops()  # a missing tensorflow-io is the error to report, before any file is read
    return decode(tf.io.read_file(path))


def decode(contents):
    """WAV, FLAC, OGG Vorbis or MP3 bytes -> (mono float32 samples in [-1, 1], int32 sample rate); first channel.

    Like `lstm_apps.inputs.audio.decode_wav`, for every format. The format is read from the first bytes, the rate
    from the header (tfio's byte decoders return samples only). Not tfio's AudioIOTensor: its file resource is
    shared by parallel calls of a tf.data map and hands one file's samples to another.
    Integer PCM is divided by 2**(bits-1), as tf.audio.decode_wav and soundfile do.
    """
    ops = core_ops()
    head = tf.strings.join([tf.strings.substr(contents, 0, 12), "\0" * 12])  # sniffing never runs off the end
    magic = tf.strings.substr(head, 0, 4)
    is_mp3 = tf.logical_or(tf.equal(tf.strings.substr(head, 0, 3), "ID3"),  # ID3v2 tag or a frame sync
                           tf.logical_and(tf.equal(_uint(head, 0, 1), 0xFF), tf.equal(_uint(head, 1, 1) // 32, 7)))
    formats = [
        (tf.logical_and(tf.equal(magic, "RIFF"), tf.equal(tf.strings.substr(head, 8, 4), "WAVE")),
         lambda: _wav(ops, contents)),
        (tf.equal(magic, "fLaC"), lambda: _flac(ops, contents)),
        (tf.equal(magic, "OggS"), lambda: _vorbis(ops, contents)),
        (is_mp3, lambda: _mp3(ops, contents)),
    ]
    waveform, rate = tf.case(formats, default=lambda: _fail("not a WAV, FLAC, OGG Vorbis or MP3 file"))
    return tf.ensure_shape(waveform, [None]), rate


_ANY = [-1, -1]  # decoded shape: [samples, channels], both from the data


def _uint(contents, offset, size):
    """Little-endian unsigned integer of `size` bytes at `offset` (int64)."""
    data = tf.cast(tf.io.decode_raw(tf.strings.substr(contents, offset, size), tf.uint8), tf.int64)
    return tf.reduce_sum(data * tf.constant([256 ** i for i in range(size)], tf.int64))


def _fail(message, *values):
    with tf.control_dependencies([tf.debugging.Assert(False, [tf.constant(message), *values])]):
        return tf.zeros([0], tf.float32), tf.constant(0, tf.int32)


def _pcm(decoder, bits):
    """Decoded integer PCM scaled to [-1, 1], by sample width (tfio returns 8-bit as unsigned, 24-bit in int32)."""
    def scaled(dtype, scale, offset=0.0):
        return lambda: tf.cast(decoder(dtype)[:, 0], tf.float32) * scale - offset
    return tf.case([(tf.equal(bits, 16), scaled(tf.int16, 1.0 / 32768.0)),
                    (tf.equal(bits, 24), scaled(tf.int32, 1.0 / 2147483648.0)),
                    (tf.equal(bits, 8), scaled(tf.uint8, 1.0 / 128.0, 1.0))],
                   default=lambda: _fail("unsupported sample width (bits)", bits)[0])


def _wav(ops, contents):
    offset = tf.while_loop(  # the "fmt " chunk is usually first, after the RIFF header, but need not be
        lambda at: tf.logical_and(tf.not_equal(tf.strings.substr(contents, at, 4), "fmt "),
                                  at + 8 < tf.cast(tf.strings.length(contents), tf.int64)),
        lambda at: [at + 8 + (_uint(contents, at + 4, 4) + 1) // 2 * 2], [tf.constant(12, tf.int64)])[0]
    tag, rate, bits = _uint(contents, offset + 8, 2), _uint(contents, offset + 12, 4), _uint(contents, offset + 22, 2)
    tag = tf.where(tf.equal(tag, 0xFFFE), _uint(contents, offset + 32, 2), tag)  # WAVE_FORMAT_EXTENSIBLE
    decode = lambda dtype: ops.io_audio_decode_wav(contents, shape=_ANY, dtype=dtype)  # noqa: E731
    waveform = tf.case(
        [(tf.logical_and(tf.equal(tag, 3), tf.equal(bits, 32)), lambda: decode(tf.float32)[:, 0]),
         (tf.logical_and(tf.equal(tag, 1), tf.not_equal(bits, 32)), lambda: _pcm(decode, bits))],
        default=lambda: _fail("WAV: expected 8/16/24-bit PCM or 32-bit float (format tag, bits)", tag, bits)[0])
    return waveform, tf.cast(rate, tf.int32)  # 32-bit integer PCM: tfio 0.37.1 decodes it as float, so refused


def _flac(ops, contents):
    # STREAMINFO, the mandatory first metadata block: 20-bit rate, then 3 bits channels-1, 5 bits bits-1.
    rate = _uint(contents, 18, 1) * 4096 + _uint(contents, 19, 1) * 16 + _uint(contents, 20, 1) // 16
    bits = _uint(contents, 20, 1) % 2 * 16 + _uint(contents, 21, 1) // 16 + 1
    decode = lambda dtype: ops.io_audio_decode_flac(contents, shape=_ANY, dtype=dtype)  # noqa: E731
    return _pcm(decode, bits), tf.cast(rate, tf.int32)


def _vorbis(ops, contents):
    # First Ogg page: 27-byte header, segment table, then the identification packet "\x01vorbis" ... rate at +12.
    packet = 27 + _uint(contents, 26, 1)
    rate = _uint(contents, packet + 12, 4)
    is_vorbis = tf.equal(tf.strings.substr(contents, packet, 7), "\x01vorbis")
    return tf.cond(is_vorbis,
                   lambda: (ops.io_audio_decode_vorbis(contents, shape=_ANY)[:, 0], tf.cast(rate, tf.int32)),
                   lambda: _fail("OGG: expected a Vorbis stream (Opus and others are not decoded)"))


_MP3_RATES = [[11025, 12000, 8000, 0], [0, 0, 0, 0], [22050, 24000, 16000, 0], [44100, 48000, 32000, 0]]


def _mp3(ops, contents):
    # Skip an ID3v2 tag (syncsafe size, optional footer), then the first frame header: version and rate index.
    tag_size = sum(_uint(contents, 6 + i, 1) * 128 ** (3 - i) for i in range(4)) + 10
    tag_size += tf.where(tf.equal(_uint(contents, 5, 1) // 16 % 2, 1), tf.constant(10, tf.int64), 0)
    start = tf.where(tf.equal(tf.strings.substr(contents, 0, 3), "ID3"), tag_size, tf.constant(0, tf.int64))
    version, index = _uint(contents, start + 1, 1) // 8 % 4, _uint(contents, start + 2, 1) // 4 % 4
    rate = tf.gather_nd(tf.constant(_MP3_RATES, tf.int32), [version, index])
    is_frame = tf.logical_and(tf.logical_and(tf.equal(_uint(contents, start, 1), 0xFF),
                                             tf.equal(_uint(contents, start + 1, 1) // 32, 7)), rate > 0)
    return tf.cond(is_frame, lambda: (ops.io_audio_decode_mp3(contents, shape=_ANY)[:, 0], rate),
                   lambda: _fail("MP3: no frame header after the ID3 tag"))


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
