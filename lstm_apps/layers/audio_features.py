"""Audio features computed inside the model with tf.signal, so an exported model takes raw waveforms."""
import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="lstm_apps")
class LogMelSpectrogram(keras.layers.Layer):
    """Turns waveforms into log-mel (or MFCC) frames with `tf.signal`, inside the model.

    Computing features in the graph lets an exported model take raw waveforms. Matches
    ``librosa.feature.melspectrogram(y, sr, n_fft=frame_length, hop_length=frame_step, center=False, htk=True,
    norm=None, power=2.0)`` followed by a natural log with ``log_offset`` (the test states the tolerance); with
    ``num_mfcc > 0`` it returns the first ``num_mfcc`` DCT-II coefficients of that log-mel spectrogram. Frames are
    not padded (``center=False``): a clip of ``samples`` samples gives
    ``1 + (samples - frame_length) // frame_step`` frames (`num_frames`). The layer has no weights.

    Args:
        sample_rate: int. Sampling rate of the waveforms, in Hz. Defaults to `16000`.
        frame_length: int. Window length in samples. Defaults to `None`: 25 ms at `sample_rate`.
        frame_step: int. Hop between frames in samples. Defaults to `None`: 10 ms at `sample_rate`.
        fft_length: int. FFT size. Defaults to `None`: `frame_length`.
        num_mel_bins: int. Number of mel bands. Defaults to `40`.
        lower_edge_hertz: float. Lowest frequency of the mel filterbank. Defaults to `20.0`.
        upper_edge_hertz: float. Highest frequency of the mel filterbank. Defaults to `None`: the Nyquist
            frequency, `sample_rate / 2`.
        num_mfcc: int. If positive, return this many MFCCs instead of the log-mel bands. Defaults to `0`.
        log_offset: float. Added to the mel power before the log, so silence stays finite. Defaults to `1e-6`.
        **kwargs: other keyword arguments passed to `keras.layers.Layer`, including `name`, `trainable` and
            `dtype`.

    Call arguments:
        waveforms: float tensor `(batch, samples)` (cast to float32).

    Input shape: `(batch, samples)`.
    Output shape: `(batch, frames, num_mfcc or num_mel_bins)`.

    Example:
    >>> features = LogMelSpectrogram(sample_rate=8000, num_mel_bins=40)
    >>> tuple(features(tf.zeros((2, 8000))).shape)
    (2, 98, 40)
    >>> mfcc = LogMelSpectrogram(sample_rate=8000, num_mfcc=13)
    >>> tuple(mfcc(tf.zeros((2, 8000))).shape), mfcc.num_frames(8000)
    ((2, 98, 13), 98)
    """

    def __init__(self, sample_rate=16000, frame_length=None, frame_step=None, fft_length=None, num_mel_bins=40,
                 lower_edge_hertz=20.0, upper_edge_hertz=None, num_mfcc=0, log_offset=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.sample_rate = sample_rate
        self.frame_length = frame_length or int(round(0.025 * sample_rate))
        self.frame_step = frame_step or int(round(0.010 * sample_rate))
        self.fft_length = fft_length or self.frame_length
        self.num_mel_bins = num_mel_bins
        self.lower_edge_hertz = lower_edge_hertz
        self.upper_edge_hertz = upper_edge_hertz or sample_rate / 2.0
        self.num_mfcc = num_mfcc
        self.log_offset = log_offset

    def build(self, input_shape):
        self.mel_matrix = tf.signal.linear_to_mel_weight_matrix(
            self.num_mel_bins, self.fft_length // 2 + 1, self.sample_rate, self.lower_edge_hertz,
            self.upper_edge_hertz)
        self.built = True

    def call(self, waveforms):
        stft = tf.signal.stft(tf.cast(waveforms, tf.float32), self.frame_length, self.frame_step, self.fft_length,
                              window_fn=tf.signal.hann_window)
        power = tf.square(tf.abs(stft))
        log_mel = tf.math.log(tf.tensordot(power, self.mel_matrix, 1) + self.log_offset)
        if self.num_mfcc:
            return tf.signal.mfccs_from_log_mel_spectrograms(log_mel)[..., : self.num_mfcc]
        return log_mel

    def num_frames(self, num_samples):
        return 1 + (num_samples - self.frame_length) // self.frame_step

    def compute_output_shape(self, input_shape):
        frames = None if input_shape[1] is None else self.num_frames(input_shape[1])
        return (input_shape[0], frames, self.num_mfcc or self.num_mel_bins)

    def get_config(self):
        config = super().get_config()
        config.update(sample_rate=self.sample_rate, frame_length=self.frame_length, frame_step=self.frame_step,
                      fft_length=self.fft_length, num_mel_bins=self.num_mel_bins,
                      lower_edge_hertz=self.lower_edge_hertz, upper_edge_hertz=self.upper_edge_hertz,
                      num_mfcc=self.num_mfcc, log_offset=self.log_offset)
        return config


@keras.saving.register_keras_serializable(package="lstm_apps")
class SpecAugment(keras.layers.Layer):
    """SpecAugment-style masking (Park et al. 2019) of feature frames, in training only.

    Each example gets `time_masks` bands of up to `max_time_width` frames and `freq_masks` bands of up to
    `max_freq_width` bins set to the mask value (0, the mean after normalisation). Band widths and positions are
    drawn per example and per call; a band may have width 0. Identity at inference (`training` false or unset).
    The layer has no weights.

    Args:
        time_masks: int. Number of time bands per example. Defaults to `2`.
        max_time_width: int. Largest width of a time band, in frames. Defaults to `10`.
        freq_masks: int. Number of frequency bands per example. Defaults to `2`.
        max_freq_width: int. Largest width of a frequency band, in bins. Defaults to `5`.
        seed: int. Seed of the layer's `keras.random.SeedGenerator`, for reproducible masks. Defaults to `None`
            (different masks in every run).
        **kwargs: other keyword arguments passed to `keras.layers.Layer`, including `name`, `trainable` and
            `dtype`.

    Call arguments:
        features: float tensor `(batch, frames, bins)`.
        training: bool. Masks are applied only when `True`.

    Input shape: `(batch, frames, bins)`.
    Output shape: the input shape.

    Example:
    >>> augment = SpecAugment(time_masks=2, max_time_width=5, seed=0)
    >>> masked = augment(tf.ones((1, 50, 40)), training=True)
    >>> tuple(masked.shape)
    (1, 50, 40)
    >>> bool(tf.reduce_all(augment(tf.ones((1, 50, 40))) == 1.0))  # inference: unchanged
    True
    """

    def __init__(self, time_masks=2, max_time_width=10, freq_masks=2, max_freq_width=5, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.time_masks = time_masks
        self.max_time_width = max_time_width
        self.freq_masks = freq_masks
        self.max_freq_width = max_freq_width
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _band_mask(self, batch, length, count, max_width):
        """[batch, length] float mask with `count` random bands of 0 per row."""
        keep = tf.ones((batch, length))
        positions = tf.range(length)[tf.newaxis, :]
        for _ in range(count):
            width = keras.random.randint((batch, 1), 0, max_width + 1, seed=self.seed_generator)
            room = tf.cast(tf.maximum(length - width, 0) + 1, tf.float32)
            start = tf.cast(keras.random.uniform((batch, 1), seed=self.seed_generator) * room, tf.int32)
            inside = (positions >= start) & (positions < start + width)
            keep = keep * tf.cast(~inside, keep.dtype)
        return keep

    def call(self, features, training=None):
        if not training:
            return features
        shape = tf.shape(features)
        time_keep = self._band_mask(shape[0], shape[1], self.time_masks, self.max_time_width)
        freq_keep = self._band_mask(shape[0], shape[2], self.freq_masks, self.max_freq_width)
        return features * time_keep[:, :, tf.newaxis] * freq_keep[:, tf.newaxis, :]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(time_masks=self.time_masks, max_time_width=self.max_time_width, freq_masks=self.freq_masks,
                      max_freq_width=self.max_freq_width, seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package="lstm_apps")
class PerClipNormalization(keras.layers.Layer):
    """Cepstral-mean-style normalisation per clip: subtract each clip's mean log-mel over its non-silent frames.

    Removes a clip's fixed spectral tilt (microphone, room, much of a speaker's timbre), which helps on speakers
    not seen in training. Frames whose loudest bin is below `floor` above the quietest possible value (zero padding)
    are left out of the mean and set to 0. With `num_mfcc > 0` the normalised log-mel is then turned into that many
    MFCCs (the mean of the MFCCs is the DCT of the log-mel mean, and only the log-mel shows which frames are silent).
    The layer has no weights.

    Args:
        log_offset: float. The `log_offset` of the `LogMelSpectrogram` that made the input: `log(log_offset)` is
            the value of a silent bin. Defaults to `1e-6`.
        floor: float. A frame counts as voiced when its loudest bin exceeds `log(log_offset) + floor`. Defaults
            to `2.0`.
        num_mfcc: int. If positive, return this many MFCCs of the normalised log-mel instead of the log-mel.
            Defaults to `0`.
        **kwargs: other keyword arguments passed to `keras.layers.Layer`, including `name`, `trainable` and
            `dtype`.

    Call arguments:
        log_mel: float tensor `(batch, frames, bins)` of log-mel energies.

    Input shape: `(batch, frames, bins)`.
    Output shape: `(batch, frames, num_mfcc or bins)`.

    Example:
    >>> log_mel = tf.concat([tf.random.normal((1, 4, 40), seed=0) + 5.0, tf.fill((1, 2, 40), tf.math.log(1e-6))], 1)
    >>> normalized = PerClipNormalization()(log_mel)
    >>> tuple(normalized.shape)
    (1, 6, 40)
    >>> float(tf.reduce_sum(tf.abs(normalized[:, 4:])))  # padding frames are set to 0
    0.0
    >>> tuple(PerClipNormalization(num_mfcc=13)(log_mel).shape)
    (1, 6, 13)
    """

    def __init__(self, log_offset=1e-6, floor=2.0, num_mfcc=0, **kwargs):
        super().__init__(**kwargs)
        self.log_offset = log_offset
        self.floor = floor
        self.num_mfcc = num_mfcc

    def call(self, log_mel):
        silence = tf.math.log(self.log_offset)
        voiced = tf.cast(tf.reduce_max(log_mel, axis=-1, keepdims=True) > silence + self.floor, log_mel.dtype)
        count = tf.maximum(tf.reduce_sum(voiced, axis=1, keepdims=True), 1.0)
        mean = tf.reduce_sum(log_mel * voiced, axis=1, keepdims=True) / count
        normalized = (log_mel - mean) * voiced
        if self.num_mfcc:
            return tf.signal.mfccs_from_log_mel_spectrograms(normalized)[..., : self.num_mfcc]
        return normalized

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.num_mfcc or input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(log_offset=self.log_offset, floor=self.floor, num_mfcc=self.num_mfcc)
        return config
