"""Audio front end against reference implementations (librosa, scipy, soundfile) on real clips."""
import librosa
import numpy as np
import scipy.signal
import soundfile
import tensorflow as tf

from lstm_apps.inputs.audio import (decode_wav, fast_fft_lengths, fit_length, mix_noise, nearest_fast_length, resample,
                                    speed_perturb, speed_perturb_clip, time_shift)
from lstm_apps.layers import LogMelSpectrogram

CLIP = "recordings/3_theo_7.wav"


def test_wav_decoder_equals_soundfile(fsdd_dir):
    path = fsdd_dir / CLIP
    ours, rate = decode_wav(tf.io.read_file(str(path)))
    reference, reference_rate = soundfile.read(path, dtype="float32")
    assert int(rate) == reference_rate == 8000
    np.testing.assert_array_equal(ours.numpy(), reference)


def test_log_mel_matches_librosa_on_a_real_clip(fsdd_dir):
    """Tolerance: 0.05 in natural-log units (about 0.2 dB). TF builds its mel triangles in mel space, librosa in
    Hz space; on this clip the largest difference is about 0.02."""
    waveform, rate = soundfile.read(fsdd_dir / CLIP, dtype="float32")
    layer = LogMelSpectrogram(sample_rate=rate, frame_length=200, frame_step=80, num_mel_bins=40,
                              lower_edge_hertz=20.0)
    ours = layer(waveform[None])[0].numpy()
    mel = librosa.feature.melspectrogram(y=waveform, sr=rate, n_fft=200, hop_length=80, center=False, htk=True,
                                         norm=None, power=2.0, n_mels=40, fmin=20.0, fmax=rate / 2)
    reference = np.log(mel.T + layer.log_offset)
    assert ours.shape == reference.shape
    assert np.abs(ours - reference).max() < 0.05


def test_mfcc_matches_librosa_dct_on_a_real_clip(speech_commands_core_dir):
    """MFCC = DCT-II of the log-mel frames: librosa.feature.mfcc(norm='ortho') on the same log-mel, except that
    tf.signal scales every coefficient by sqrt(2/N), so c0 is sqrt(2) times librosa's orthonormal c0."""
    waveform, rate = soundfile.read(speech_commands_core_dir / "yes" / "0cb74144_nohash_0.flac", dtype="float32")
    log_mel_layer = LogMelSpectrogram(sample_rate=rate, num_mel_bins=40)
    mfcc_layer = LogMelSpectrogram(sample_rate=rate, num_mel_bins=40, num_mfcc=13)
    log_mel = log_mel_layer(waveform[None])[0].numpy()
    reference = librosa.feature.mfcc(S=log_mel.T, n_mfcc=13, dct_type=2, norm="ortho").T
    reference[:, 0] *= np.sqrt(2.0)
    np.testing.assert_allclose(mfcc_layer(waveform[None])[0].numpy(), reference, rtol=1e-3, atol=2e-3)


def test_resample_equals_scipy_fft_resample(speech_commands_core_dir):
    waveform, rate = soundfile.read(speech_commands_core_dir / "no" / sorted(
        p.name for p in (speech_commands_core_dir / "no").iterdir())[0], dtype="float32")
    ours = resample(tf.constant(waveform), rate, 8000).numpy()
    reference = scipy.signal.resample(waveform, len(waveform) * 8000 // rate)
    assert ours.shape == reference.shape == (8000,)
    np.testing.assert_allclose(ours, reference, atol=1e-4)
    np.testing.assert_array_equal(resample(tf.constant(waveform), rate, rate).numpy(), waveform)


def test_fit_length_pads_and_centre_crops():
    x = tf.range(1, 6, dtype=tf.float32)
    assert fit_length(x, 8).numpy().tolist() == [1, 2, 3, 4, 5, 0, 0, 0]
    assert fit_length(x, 3).numpy().tolist() == [2, 3, 4]


def test_augmentation_keeps_length_and_changes_signal():
    tf.random.set_seed(0)
    x = tf.sin(tf.linspace(0.0, 50.0, 1000))
    shifted = time_shift(x, 100)
    assert shifted.shape == x.shape
    noisy = mix_noise(x, tf.random.normal((2, 5000)), probability=1.0, max_volume=0.5)
    assert noisy.shape == x.shape and not np.allclose(noisy.numpy(), x.numpy())
    assert np.abs(noisy.numpy()).max() <= 1.0


def test_speed_change_of_a_padded_clip_keeps_its_onset():
    """A 0.5 s clip (a loud 25 ms onset, then a quiet tone) padded to 1 s, slowed or sped up by up to 20%: it keeps
    its length, its loud onset stays at the start, and it lasts 0.5 s times the factor. A clip that fills the window
    is centre-cropped as `fit_length` crops."""
    t = tf.range(4000, dtype=tf.float32)
    clip = fit_length(tf.sin(2 * np.pi * 440 * t / 8000) * tf.where(t < 200, 0.9, 0.2), 8000)
    lengths = []
    for seed in range(10):
        tf.random.set_seed(seed)
        out = speed_perturb_clip(clip, 0.2, 8000).numpy()
        assert out.shape == (8000,)
        assert np.abs(out[:150]).max() > 0.6, "the onset must not be cut"
        lengths.append(np.flatnonzero(np.abs(out) > 0.05)[-1] + 1)
    assert 4000 * 0.8 * 0.98 < min(lengths) < 4000 < max(lengths) < 4000 * 1.2 * 1.02
    full = tf.sin(2 * np.pi * 440 * tf.range(8000, dtype=tf.float32) / 8000)
    tf.random.set_seed(0)
    expected = fit_length(speed_perturb(full, 0.2), 8000)
    tf.random.set_seed(0)
    np.testing.assert_allclose(speed_perturb_clip(full, 0.2, 8000), expected)


def test_speed_perturbation_stretches_within_bounds(fsdd_dir):
    """A 440 Hz tone played up to 20% faster/slower: length and pitch change by the same factor, inside the bound
    (within the 1% that snapping to a fast FFT length may add), and every length is a fast FFT length."""
    tf.random.set_seed(1)
    tone = tf.sin(2 * np.pi * 440 * tf.range(8000, dtype=tf.float32) / 8000)
    lengths = []
    for _ in range(20):
        out = speed_perturb(tone, 0.2).numpy()
        factor = 8000 / len(out)
        assert 0.8 * 0.99 <= factor <= 1.2 * 1.01
        assert len(out) in set(fast_fft_lengths())
        peak_hz = np.argmax(np.abs(np.fft.rfft(out))) * 8000 / len(out)
        assert abs(peak_hz - 440 * factor) < 5
        lengths.append(len(out))
    assert len(set(lengths)) > 5
    np.testing.assert_allclose(speed_perturb(tone, 0.0).numpy(), tone.numpy(), atol=1e-5)


def test_nearest_fast_length_is_the_nearest_11_smooth_number():
    """Against a brute-force search: the nearest length with no prime factor above 11 (the lower on a tie), and
    near a second of 16 kHz audio it is always within 1%."""
    def smooth(n):
        for prime in (2, 3, 5, 7, 11):
            while n % prime == 0:
                n //= prime
        return n == 1

    fast = [n for n in range(1, 40_000) if smooth(n)]
    assert list(fast_fft_lengths()[:len(fast)]) == fast
    for length in [1, 2, 13, 997, 14_401, 16_001, 16_007, 17_563, 30_011]:
        expected = min(fast, key=lambda n: (abs(n - length), n))
        assert int(nearest_fast_length(tf.constant(length, tf.int64))) == expected
    for length in range(14_000, 18_000, 7):
        assert abs(int(nearest_fast_length(tf.constant(length, tf.int64))) - length) < 0.01 * length
