"""The keywords inference module: waveforms or WAV bytes in, labels and probabilities out, all TF ops."""
import numpy as np
import tensorflow as tf

from lstm_apps.inputs.audio import fit_length, wav_bytes_to_input


class KeywordSpotter(tf.Module):
    """A trained keyword model with its labels and rate: serves `evaluate`, `predict` and the SavedModel.

    serving_default: waveform float32[batch, samples] at `sample_rate` (any length: padded or cropped);
    serving_wav: wav string[batch] (WAV file bytes, any rate: decoded and resampled). Both return label
    string[batch], probability float32[batch], probabilities float32[batch, classes] (in the order of `labels`).
    """

    def __init__(self, model, labels, sample_rate):
        super().__init__()
        self.model = model
        self.labels = list(labels)
        self.sample_rate = sample_rate
        self.num_samples = int(model.inputs[0].shape[1])
        self.label_table = tf.constant(self.labels)

    def outputs(self, waveforms):
        probabilities = self.model(waveforms, training=False)
        best = tf.argmax(probabilities, axis=-1)
        return {"label": tf.gather(self.label_table, best), "probability": tf.reduce_max(probabilities, axis=-1),
                "probabilities": probabilities}

    def serve_waveform(self, waveform):
        return self.outputs(tf.map_fn(lambda w: fit_length(w, self.num_samples), waveform))

    def serve_wav(self, wav):
        waveforms = tf.map_fn(lambda b: wav_bytes_to_input(b, self.sample_rate, self.num_samples), wav,
                              fn_output_signature=tf.TensorSpec([self.num_samples], tf.float32))
        return self.outputs(waveforms)

    def endpoints(self):
        return {"serving_default": (self.serve_waveform, [tf.TensorSpec([None, None], tf.float32, name="waveform")]),
                "serving_wav": (self.serve_wav, [tf.TensorSpec([None], tf.string, name="wav")])}

    def warmup_inputs(self):
        silence = np.zeros((1, self.num_samples), np.float32)
        wav_bytes = tf.audio.encode_wav(silence.T, self.sample_rate).numpy()
        return {"serving_default": {"waveform": silence}, "serving_wav": {"wav": np.array([wav_bytes], object)}}

    def serving_info(self):
        return {"task": "keywords", "labels": list(self.labels), "sample_rate": self.sample_rate,
                "clip_samples": self.num_samples}

    def trackables(self):
        return [self.model]
