"""The optional tensorflow-io audio backend against soundfile and the default (tf) backend, on real clips.

Runs in the `tfio` tox environment (TensorFlow 2.17 + tensorflow-io 0.37.1); skipped where tensorflow-io is absent.
"""
import numpy as np
import pytest

pytest.importorskip("tensorflow_io")

import soundfile  # noqa: E402
import tensorflow as tf  # noqa: E402

from lstm_apps.inputs import audio, audio_tfio  # noqa: E402

try:
    audio_tfio.core_ops()
except Exception as error:  # installed but unloadable (TensorFlow > 2.17): nothing here can run
    pytest.skip(str(error), allow_module_level=True)

EDGE = 100  # samples left out at each end where the resamplers' filters see the implicit zeros differently


def flac_files(speech_commands_core_dir, word="yes", count=4):
    return sorted((speech_commands_core_dir / word).glob("*.flac"))[:count]


def decode(path):
    waveform, rate = audio_tfio.decode_file(tf.constant(str(path)))
    return waveform.numpy(), int(rate)


def correlation(a, b):
    return float(np.corrcoef(a, b)[0, 1])


def below(waveform, rate, hz):
    """The part of `waveform` below `hz` (FFT brick wall), to compare resamplers outside their transition bands."""
    spectrum = np.fft.rfft(waveform)
    spectrum[np.fft.rfftfreq(len(waveform), 1 / rate) > hz] = 0
    return np.fft.irfft(spectrum, len(waveform))


def test_flac_matches_soundfile(speech_commands_core_dir):
    noise = sorted((speech_commands_core_dir / "_background_noise_").glob("*.flac"))[:1]  # a long recording too
    for path in flac_files(speech_commands_core_dir) + noise:
        expected, expected_rate = soundfile.read(str(path), dtype="float32")
        waveform, rate = decode(path)
        assert waveform.dtype == np.float32 and rate == expected_rate
        assert waveform.shape == expected.shape
        np.testing.assert_allclose(waveform, expected, rtol=0, atol=1e-6, err_msg=str(path))


def test_wav_matches_in_graph_decode_wav(fsdd_dir):
    for path in sorted((fsdd_dir / "recordings").glob("*.wav"))[:5]:
        expected, expected_rate = audio.decode_wav(tf.io.read_file(str(path)))
        waveform, rate = decode(path)
        assert rate == int(expected_rate)
        np.testing.assert_array_equal(waveform, expected.numpy(), err_msg=str(path))


def test_parallel_map_gives_each_file_its_own_samples(speech_commands_core_dir, fsdd_dir):
    """Regression: tfio's AudioIOTensor ops share one file resource across parallel map calls and mixed files up
    in about every other pass over these 60 clips (5 passes here); the byte decoders are stateless."""
    paths = [str(p) for p in sorted((speech_commands_core_dir / "no").glob("*.flac"))[:40]]
    paths += [str(p) for p in sorted((fsdd_dir / "recordings").glob("*.wav"))[:20]]
    expected = [soundfile.read(p, dtype="float32")[0] for p in paths]
    for _ in range(5):
        ds = tf.data.Dataset.from_tensor_slices(paths).map(lambda p: audio_tfio.decode_file(p)[0],
                                                           num_parallel_calls=tf.data.AUTOTUNE)
        for path, want, got in zip(paths, expected, ds.as_numpy_iterator()):
            np.testing.assert_array_equal(got, want, err_msg=path)


@pytest.mark.parametrize("suffix, subtype", [(".flac", "PCM_S8"), (".flac", "PCM_24"), (".wav", "PCM_U8"),
                                             (".wav", "PCM_24"), (".wav", "FLOAT")])
def test_other_sample_widths_match_soundfile(speech_commands_core_dir, tmp_path, suffix, subtype):
    clip, rate = soundfile.read(str(flac_files(speech_commands_core_dir, count=1)[0]), dtype="float32")
    path = tmp_path / f"clip{suffix}"
    soundfile.write(str(path), clip, rate, subtype=subtype)
    waveform, decoded_rate = decode(path)
    assert decoded_rate == rate
    np.testing.assert_array_equal(waveform, soundfile.read(str(path), dtype="float32")[0])


def test_bytes_stereo_and_header_variants(fsdd_dir, tmp_path):
    """`decode` takes bytes (the rate comes from the header); stereo keeps the first channel; WAVE_FORMAT_EXTENSIBLE
    and a chunk before "fmt " are read."""
    clip, rate = soundfile.read(str(sorted((fsdd_dir / "recordings").glob("*.wav"))[0]), dtype="float32")
    stereo = np.stack([clip, -clip], axis=1)
    for name, kwargs in [("stereo.flac", {}), ("stereo.wav", {}), ("extensible.wav", {"format": "WAVEX"})]:
        soundfile.write(str(tmp_path / name), stereo, rate, subtype="PCM_16", **kwargs)
        waveform, decoded_rate = audio_tfio.decode(tf.io.read_file(str(tmp_path / name)))
        assert int(decoded_rate) == rate, name
        np.testing.assert_array_equal(waveform.numpy(), clip, err_msg=name)
    plain = (tmp_path / "stereo.wav").read_bytes()
    junk = b"JUNK" + (6).to_bytes(4, "little") + b"abcdef"
    riff = b"RIFF" + (len(plain) - 8 + len(junk)).to_bytes(4, "little") + b"WAVE"
    waveform, decoded_rate = audio_tfio.decode(tf.constant(riff + junk + plain[12:]))
    assert int(decoded_rate) == rate
    np.testing.assert_array_equal(waveform.numpy(), clip)


@pytest.mark.parametrize("name, message", [("opus.ogg", "expected a Vorbis stream"),
                                           ("pcm32.wav", "expected 8/16/24-bit PCM or 32-bit float"),
                                           ("text.wav", "not a WAV, FLAC, OGG Vorbis or MP3 file")])
def test_unsupported_content_is_refused_not_misread(tmp_path, name, message):
    """Opus is not decoded; 32-bit integer WAV is decoded by tfio 0.37.1 as if it were float, so it is refused."""
    tone = (np.sin(np.arange(4800) * 2 * np.pi * 440 / 48000) * 0.5).astype(np.float32)
    path = tmp_path / name
    if name == "opus.ogg":
        soundfile.write(str(path), tone, 48000, format="OGG", subtype="OPUS")
    elif name == "pcm32.wav":
        soundfile.write(str(path), tone, 48000, subtype="PCM_32")
    else:
        path.write_text("not audio at all")
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        decode(path)


@pytest.mark.parametrize("fmt, subtype, suffix", [("OGG", "VORBIS", ".ogg"), ("MP3", "MPEG_LAYER_III", ".mp3")])
def test_lossy_formats_decode_close_to_the_source(speech_commands_core_dir, tmp_path, fmt, subtype, suffix):
    """Vorbis and MP3 are lossy: the same length and rate, correlation with the source clip > 0.98 (measured on this
    clip: Vorbis 0.992, MP3 0.9995; 0.98-0.998 across clips at libsndfile's default quality), and exactly what
    matters for the decoder: the same samples as libsndfile's own decoding of the file, to 1e-5."""
    if fmt not in soundfile.available_formats():
        pytest.skip(f"this libsndfile cannot write {fmt}")
    source = flac_files(speech_commands_core_dir, count=1)[0]
    clip, rate = soundfile.read(str(source), dtype="float32")
    path = tmp_path / f"clip{suffix}"
    soundfile.write(str(path), clip, rate, format=fmt, subtype=subtype)
    waveform, decoded_rate = decode(path)
    assert decoded_rate == rate and waveform.shape == clip.shape
    assert correlation(waveform, clip) > 0.98
    reference, _ = soundfile.read(str(path), dtype="float32")
    np.testing.assert_allclose(waveform, reference, rtol=0, atol=1e-5)


@pytest.mark.parametrize("sample_rate", [16000, 8000])
def test_dataset_with_tfio_backend_equals_default(speech_commands_core_dir, fsdd_dir, sample_rate):
    paths = flac_files(speech_commands_core_dir, "no", 3) + sorted((fsdd_dir / "recordings").glob("*.wav"))[:2]
    num_samples = sample_rate  # one second: crops the FLAC clips when resampled, pads the shorter FSDD ones
    default = list(audio.load_waveform_dataset(paths, sample_rate, num_samples).as_numpy_iterator())
    tfio_backend = list(audio.load_waveform_dataset(paths, sample_rate, num_samples, backend="tfio")
                        .as_numpy_iterator())
    assert len(tfio_backend) == len(paths)
    for path, a, b in zip(paths, default, tfio_backend):
        np.testing.assert_array_equal(b, a, err_msg=str(path))


def test_resample_close_to_fft_resample(speech_commands_core_dir, fsdd_dir):
    """16 kHz -> 8 kHz (and FSDD 8 kHz -> 16 kHz): same length, time-aligned; full band correlation > 0.98 away
    from the edges (measured >= 0.99 on 40 random clips: the filters differ only in the band near the new
    Nyquist frequency), and > 0.9999 below 3 kHz, where both pass the signal unchanged."""
    cases = [(p, 8000) for p in flac_files(speech_commands_core_dir, "yes", 3)]
    cases += [(p, 16000) for p in sorted((fsdd_dir / "recordings").glob("*.wav"))[:2]]
    for path, rate_out in cases:
        clip, rate_in = soundfile.read(str(path), dtype="float32")
        expected = audio.resample(tf.constant(clip), rate_in, rate_out).numpy()
        resampled = audio_tfio.resample(tf.constant(clip), rate_in, rate_out).numpy()
        assert resampled.shape == expected.shape, path
        middle = slice(EDGE, -EDGE)
        assert correlation(resampled[middle], expected[middle]) > 0.98, path
        low_a, low_b = below(resampled, rate_out, 3000), below(expected, rate_out, 3000)
        assert correlation(low_a[middle], low_b[middle]) > 0.9999, path


def test_resample_identity_and_in_graph():
    clip = np.random.default_rng(0).uniform(-0.5, 0.5, 1000).astype(np.float32)
    np.testing.assert_array_equal(audio_tfio.resample(tf.constant(clip), 16000, 16000).numpy(), clip)
    traced = tf.function(audio_tfio.resample)
    out = traced(tf.constant(clip), tf.constant(16000), tf.constant(8000))
    assert out.shape == (500,)


def test_keywords_pipeline_with_data_audio_backend_tfio(speech_commands_core_dir):
    """`data.audio_backend: tfio` reaches the keywords tf.data pipeline and yields what the default backend does."""
    from lstm_apps.config import build_config
    from pipelines.keywords import data as data_lib
    from pipelines.keywords.pipeline import waveform_dataset
    from pipelines.keywords.task import TASK

    cfg = build_config(TASK.presets_dir, "quick", overrides=["data.audio_backend=tfio"])
    data = data_lib.load(cfg, speech_commands_core_dir)
    assert data.audio_backend == "tfio"
    with_tfio = list(waveform_dataset(data, "test").take(24).as_numpy_iterator())
    data.audio_backend = "tf"
    default = list(waveform_dataset(data, "test").take(24).as_numpy_iterator())
    assert len(with_tfio) == 24
    for (a, label_a), (b, label_b) in zip(with_tfio, default):
        assert label_a == label_b
        np.testing.assert_array_equal(a, b)
