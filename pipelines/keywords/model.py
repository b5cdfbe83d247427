"""Keyword models: waveform -> log-mel/MFCC (in the model) -> normalisation -> SpecAugment -> LSTMs -> classes.

MODELS maps `model.name` to a builder; all share the front end and the head, and differ in what comes before the
LSTMs (crnn: convolutions) and how their outputs are pooled over time (attention). `ensemble_model` joins trained
models (each with its own front end) into one that averages their class probabilities.
"""
import keras

from lstm_apps.layers import AttentionPooling, LogMelSpectrogram, LSTMStack, PerClipNormalization, SpecAugment


def feature_layer(cfg, sample_rate, mfcc=True):
    """The waveform -> log-mel (or, with `mfcc`, MFCC) layer the config describes."""
    features = cfg["features"]
    return LogMelSpectrogram(
        sample_rate=sample_rate,
        frame_length=int(round(features["frame_ms"] * sample_rate / 1000)),
        frame_step=int(round(features["step_ms"] * sample_rate / 1000)),
        num_mel_bins=features["num_mel_bins"],
        num_mfcc=features["num_mfcc"] if mfcc else 0,
        name="features")


def clip_features(cfg, sample_rate):
    """The fixed front end as one function (waveforms -> feature frames): the model's input layers and the
    normaliser's adaptation both call it. Per-clip normalisation needs the log-mel, so MFCCs are taken after it."""
    per_clip = cfg["features"]["per_clip_mean"]
    layers = [feature_layer(cfg, sample_rate, mfcc=not per_clip)]
    if per_clip:
        layers.append(PerClipNormalization(num_mfcc=cfg["features"]["num_mfcc"], name="per_clip_mean"))

    def apply(waveforms):
        for layer in layers:
            waveforms = layer(waveforms)
        return waveforms
    return apply


def _front_end(cfg, sample_rate, num_samples, normalizer):
    waveform = keras.Input((num_samples,), name="waveform")
    x = clip_features(cfg, sample_rate)(waveform)
    x = normalizer(x)
    augment = cfg["augment"]
    x = SpecAugment(augment["time_masks"], augment["time_mask_frames"], augment["freq_masks"],
                    augment["freq_mask_bins"], seed=cfg["train"]["seed"], name="spec_augment")(x)
    return waveform, x


def _lstm_last_state(cfg, x):
    """The classic LSTM classifier: the final output of the stack summarises the clip."""
    m = cfg["model"]
    return LSTMStack(m["units"], m["layers"], m["bidirectional"], m["dropout"], name="lstm_stack")(x)


def _lstm_attention(cfg, x):
    """de Andrade et al. 2018: attention pooling over all LSTM outputs, the query taken from the middle step."""
    m = cfg["model"]
    sequence = LSTMStack(m["units"], m["layers"], m["bidirectional"], m["dropout"], return_sequences=True,
                         name="lstm_stack")(x)
    return AttentionPooling(query_step="middle", name="attention_pooling")(sequence)


def _conv_lstm(cfg, x):
    """CRNN (as in kws_streaming): 3x3 convolutions over (time, frequency), one per `model.conv_filters` entry,
    each pooling frequency by 2 (the first also time, by model.conv_time_pool: fewer steps for the LSTMs, which
    cost most on a CPU), then the classic LSTM classifier. The convolutions see local spectral shapes wherever they
    sit in frequency, so a speaker's formants a few bins higher or lower look alike; meant for log-mel features
    (features.num_mfcc: 0)."""
    m = cfg["model"]
    x = keras.layers.Reshape((x.shape[1], x.shape[2], 1), name="spectrogram_image")(x)
    for index, filters in enumerate(m["conv_filters"]):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv_{index}")(x)
        time_pool = m["conv_time_pool"] if index == 0 else 1
        x = keras.layers.MaxPooling2D((time_pool, 2), padding="same", name=f"pool_{index}")(x)
    x = keras.layers.Reshape((x.shape[1], x.shape[2] * x.shape[3]), name="frames")(x)
    return _lstm_last_state(cfg, x)


MODELS = {"lstm": _lstm_last_state, "attention": _lstm_attention, "crnn": _conv_lstm}


def build_model(cfg, num_classes, sample_rate, num_samples, normalizer):
    """A compiled-ready Keras model: float32 waveforms [batch, num_samples] -> class probabilities."""
    name = cfg["model"]["name"]
    waveform, x = _front_end(cfg, sample_rate, num_samples, normalizer)
    x = MODELS[name](cfg, x)
    x = keras.layers.Dropout(cfg["model"]["dropout"], name="head_dropout")(x)
    probabilities = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(waveform, probabilities, name=f"keywords_{name}")


def ensemble_model(members, num_samples):
    """One waveform model from trained keyword models: the mean of their class probabilities (soft voting).
    Members that err on different speakers (e.g. an MFCC LSTM and a log-mel CRNN) correct each other."""
    waveform = keras.Input((num_samples,), name="waveform")
    outputs = []
    for index, member in enumerate(members):
        member.name = f"member_{index}"  # nested models need distinct names; two members may share an architecture
        outputs.append(member(waveform))
    probabilities = keras.layers.Average(name="probabilities")(outputs) if len(outputs) > 1 else outputs[0]
    return keras.Model(waveform, probabilities, name="keywords_ensemble")
