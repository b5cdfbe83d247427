"""Audio input: in-graph WAV decoding, resampling and length fitting (shared by tf.data and the served model),
file checks that name the bad file, and waveform augmentation (time shift, noise mixing) for tf.data.

WAV is decoded in the graph (`tf.audio.decode_wav`), so a served model can take WAV bytes. FLAC, OGG and other
formats are read with soundfile (libsndfile) in Python. The optional tensorflow-io backend
(`lstm_apps.inputs.audio_tfio`) decodes those formats in the graph too, on TensorFlow <= 2.17.
"""
import functools
from pathlib import Path

import numpy as np
import soundfile
import tensorflow as tf

from lstm_apps.errors import ConfigError, DataError, library_reason

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


def decode_wav(contents):
    """WAV bytes -> (mono float32 samples in [-1, 1], sample rate); in the graph, first channel of multi-channel."""
    audio, rate = tf.audio.decode_wav(contents)
    return audio[:, 0], rate


def resample(waveform, rate_in, rate_out):
    """Band-limited (FFT) resampling of a 1-D waveform, all in TF ops; identity when the rates match.

    Same method as scipy.signal.resample: keep (or zero-pad) the spectrum up to the new Nyquist frequency.
    """
    rate_in = tf.cast(rate_in, tf.int64)
    rate_out = tf.cast(rate_out, tf.int64)
    length_in = tf.shape(waveform, out_type=tf.int64)[0]
    length_out = tf.maximum((length_in * rate_out + rate_in // 2) // rate_in, 1)
    return tf.cond(tf.equal(rate_in, rate_out), lambda: waveform, lambda: resample_to_length(waveform, length_out))


def resample_to_length(waveform, length_out):
    """`waveform` band-limited resampled to `length_out` samples (scipy.signal.resample's method)."""
    length_in = tf.shape(waveform, out_type=tf.int64)[0]
    spectrum = tf.signal.rfft(waveform)
    bins_out = length_out // 2 + 1
    bins_in = tf.shape(spectrum, out_type=tf.int64)[0]
    keep = tf.minimum(bins_in, bins_out)
    spectrum = tf.pad(spectrum[:keep], [[0, bins_out - keep]])
    scale = tf.cast(length_out, tf.float32) / tf.cast(length_in, tf.float32)
    return tf.signal.irfft(spectrum, fft_length=tf.cast([length_out], tf.int32)) * scale


def fit_length(waveform, num_samples):
    """Zero-pad at the end or crop the centre to exactly `num_samples` (the model's fixed input length)."""
    length = tf.shape(waveform)[0]
    start = tf.maximum(length - num_samples, 0) // 2
    cropped = waveform[start : start + num_samples]
    padded = tf.pad(cropped, [[0, num_samples - tf.shape(cropped)[0]]])
    return tf.ensure_shape(padded, [num_samples])


def wav_bytes_to_input(contents, sample_rate, num_samples):
    """WAV file bytes -> the model's input waveform (decode, resample, pad/crop); used by tf.data and serving."""
    waveform, rate = decode_wav(contents)
    return fit_length(resample(waveform, rate, sample_rate), num_samples)


def check_audio_file(path, sample_rate=None, allow_resample=False, decode=True):
    """Validate a file before training touches it: readable, mono, the expected rate, not truncated.

    Raises DataError naming the file and what was expected; returns the number of frames. `decode=False` reads the
    header only (for callers that decode the file next and report a failure themselves).
    """
    path = Path(path)
    try:
        info = soundfile.info(str(path))
    except Exception as error:  # libsndfile says why in its own words
        raise DataError(f"{path}: not a readable audio file ({str(error).split(': ')[-1].strip()}); "
                        f"expected {'/'.join(s[1:].upper() for s in AUDIO_SUFFIXES)}") from None
    if info.channels != 1:
        raise DataError(f"{path}: {info.channels} channels, expected mono audio")
    if sample_rate and info.samplerate != sample_rate and not allow_resample:
        raise DataError(f"{path}: sample rate {info.samplerate} Hz, expected {sample_rate} Hz "
                        f"(or set data.resample=true to resample)")
    if info.frames <= 0:
        raise DataError(f"{path}: no audio samples, expected at least one")
    if decode and path.suffix.lower() == ".wav":
        _check_wav_data_size(path, info)
    return info.frames


def _check_wav_data_size(path, info):
    """A truncated WAV still opens in libsndfile, but tf.audio.decode_wav fails on it: compare sizes first."""
    try:
        tf.audio.decode_wav(tf.io.read_file(str(path)))
    except (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError) as error:
        raise DataError(f"{path}: truncated or malformed WAV ({library_reason(error)}); expected 16-bit PCM WAV") \
            from None


def read_audio(path, sample_rate, allow_resample=True):
    """Any supported file -> float32 mono waveform at `sample_rate` (WAV via the in-graph decoder)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    check_audio_file(path, sample_rate, allow_resample=allow_resample)
    if path.suffix.lower() == ".wav":
        waveform, rate = decode_wav(tf.io.read_file(str(path)))
    else:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        waveform = tf.constant(samples[:, 0])
    return resample(waveform, rate, sample_rate).numpy()


def read_audio_py(path):
    """soundfile read for formats tf.audio cannot decode: (float32 mono samples, rate)."""
    samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return samples[:, 0], rate


def load_waveform_dataset(paths, sample_rate, num_samples, backend="tf"):
    """tf.data of fixed-length float32 waveforms from files, decoded by `backend` (a key of AUDIO_BACKENDS)."""
    paths = [str(p) for p in paths]
    decode_file = audio_backend(backend)  # resolved before tracing, so a missing backend fails in one line

    def load(path):
        waveform, rate = decode_file(path)
        waveform = tf.ensure_shape(waveform, [None])
        return fit_length(resample(waveform, rate, sample_rate), num_samples)

    return tf.data.Dataset.from_tensor_slices(paths).map(load, num_parallel_calls=tf.data.AUTOTUNE)


def _read_any(path):
    samples, rate = read_audio_py(path.decode())
    return samples.astype(np.float32), np.int32(rate)


def _decode_file_tf(path):
    """Default backend: WAV decoded in the graph, other formats by soundfile (tf.numpy_function)."""
    is_wav = tf.strings.regex_full_match(tf.strings.lower(path), r".*\.wav")
    return tf.cond(
        is_wav,
        lambda: decode_wav(tf.io.read_file(path)),
        lambda: tuple(tf.numpy_function(_read_any, [path], (tf.float32, tf.int32), stateful=False)))


def _tfio_decode_file():
    from lstm_apps.inputs import audio_tfio  # optional: tensorflow-io is imported only when asked for
    audio_tfio.core_ops()
    return audio_tfio.decode_file


# data.audio_backend -> () -> decode_file(path tensor) -> (mono float32 waveform, sample rate), used in the graph
AUDIO_BACKENDS = {"tf": lambda: _decode_file_tf, "tfio": _tfio_decode_file}


def audio_backend(name):
    """The decode_file function of backend `name`; ConfigError (one line) for an unknown or unloadable backend."""
    if name not in AUDIO_BACKENDS:
        raise ConfigError(f"data.audio_backend: expected one of {', '.join(AUDIO_BACKENDS)}, got '{name}'")
    return AUDIO_BACKENDS[name]()


def time_shift(waveform, max_shift):
    """Shift a [samples] waveform by up to `max_shift` samples either way, zero-filling (kws augmentation)."""
    shift = tf.random.uniform([], -max_shift, max_shift + 1, dtype=tf.int32)
    length = tf.shape(waveform)[0]
    padded = tf.pad(waveform, [[max_shift, max_shift]])
    return padded[max_shift - shift : max_shift - shift + length]


# FFT lengths with no prime factor above 11: TensorFlow's CPU FFT takes ~0.3 ms for 16k of them, ~1.2 ms for a
# length with a large prime factor (half of all lengths), measured in benchmarks/RESULTS.md
FAST_FFT_PRIMES = (2, 3, 5, 7, 11)
FAST_FFT_LIMIT = 1 << 24  # 17 minutes at 16 kHz; longer clips keep their exact length


@functools.cache
def fast_fft_lengths():
    """Every whole number below FAST_FFT_LIMIT with no prime factor above 11, ascending (5,141 of them)."""
    lengths = [1]
    for prime in FAST_FFT_PRIMES:
        lengths = [n * prime ** power for n in lengths
                   for power in range(int(np.log(FAST_FFT_LIMIT / n) / np.log(prime)) + 1)
                   if n * prime ** power < FAST_FFT_LIMIT]
    return np.array(sorted(lengths), np.int64)


def nearest_fast_length(length):
    """The fast FFT length nearest to `length` (an int64 scalar tensor >= 1): within 1% of it from 4,000 samples up."""
    table = tf.constant(fast_fft_lengths())
    above = tf.minimum(tf.searchsorted(table, length[tf.newaxis])[0], len(table) - 1)
    below = tf.maximum(above - 1, 0)
    nearest = tf.where(length - table[below] <= table[above] - length, table[below], table[above])
    return tf.where(length >= FAST_FFT_LIMIT, length, nearest)


def speed_perturb(waveform, max_change):
    """Play the clip up to `max_change` (e.g. 0.1 = ±10%) faster or slower, changing pitch and tempo together
    (Ko et al. 2015): band-limited resampling to a random length. The length is the fast FFT length nearest to the
    drawn speed's (`nearest_fast_length`, a speed within 1% of it): the resampling then costs a quarter of what a
    length with a large prime factor does, and about 50 distinct speeds in ±10% are plenty (Ko et al. used 3)."""
    factor = tf.random.uniform([], 1.0 - max_change, 1.0 + max_change)
    length = tf.shape(waveform, out_type=tf.int64)[0]
    played = tf.maximum(tf.cast(tf.round(tf.cast(length, tf.float32) / factor), tf.int64), 1)
    return resample_to_length(waveform, nearest_fast_length(played))


def speed_perturb_clip(waveform, max_change, num_samples):
    """`speed_perturb` for a model-length clip, fitted back to `num_samples` without cutting a short word's onset.

    `fit_length` leaves a short recording at the start and pads the end. A slowed clip outgrows the window: its
    excess is cut from that (stretched) trailing padding first, and only what remains is cut from both ends, as
    `fit_length` does; a plain centre crop would cut the onset of every slowed short clip."""
    stretched = speed_perturb(waveform, max_change)
    length, stretched_length = tf.shape(waveform)[0], tf.shape(stretched)[0]
    last_nonzero = tf.reduce_max(tf.cast(tf.not_equal(waveform, 0.0), tf.int32) * tf.range(1, length + 1))
    stretched_padding = (length - last_nonzero) * stretched_length // length
    cut = tf.minimum(tf.maximum(stretched_length - num_samples, 0), stretched_padding)
    return fit_length(stretched[: stretched_length - cut], num_samples)


def mix_noise(waveform, noise_bank, probability, max_volume):
    """With `probability`, add a random window of a random noise recording at a random volume <= `max_volume`.

    `noise_bank` is a float32 [recordings, samples] tensor; each row is at least as long as the waveform.
    """
    length = tf.shape(waveform)[0]
    row = tf.random.uniform([], 0, tf.shape(noise_bank)[0], dtype=tf.int32)
    start = tf.random.uniform([], 0, tf.shape(noise_bank)[1] - length + 1, dtype=tf.int32)
    noise = noise_bank[row, start : start + length]
    volume = tf.random.uniform([], 0.0, max_volume)
    use = tf.cast(tf.random.uniform([]) < probability, tf.float32)
    return tf.clip_by_value(waveform + use * volume * noise, -1.0, 1.0)
