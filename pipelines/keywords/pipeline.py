"""tf.data for the keywords task: decoded clips (cached), training augmentation, batches."""
import numpy as np
import tensorflow as tf

from lstm_apps.inputs.audio import load_waveform_dataset, mix_noise, speed_perturb_clip, time_shift
from pipelines.keywords.data import SILENCE


def waveform_dataset(data, split):
    """(waveform, label id) for one split: files decoded in tf.data, plus the split's silence clips; cached."""
    files = load_waveform_dataset(data.files[split], data.sample_rate, data.num_samples, data.audio_backend)
    ds = tf.data.Dataset.zip(files, tf.data.Dataset.from_tensor_slices(np.array(data.targets[split], np.int32)))
    if split in data.silence and len(data.silence[split]):
        silence_id = data.labels.index(SILENCE)
        labels = np.full(len(data.silence[split]), silence_id, np.int32)
        ds = ds.concatenate(tf.data.Dataset.from_tensor_slices((data.silence[split], labels)))
    return ds.cache()


def split_targets(data, split):
    """Label ids in the order `waveform_dataset` yields the clips (files, then silence)."""
    silence = [data.labels.index(SILENCE)] * len(data.silence[split]) if data.silence else []
    return np.array(data.targets[split] + silence, np.int32)


def split_size(data, split):
    return len(split_targets(data, split))


def training_dataset(data, cfg):
    """Shuffled, augmented (speed change, time shift, noise mixing) batches; SpecAugment runs inside the model."""
    augment = cfg["augment"]
    max_shift = int(augment["time_shift_ms"] * data.sample_rate / 1000)
    noise_bank = tf.constant(data.noise_bank)

    def augment_clip(waveform, label):
        if augment["speed_change"] > 0:
            waveform = speed_perturb_clip(waveform, data.sample_rate, augment["speed_change"], data.num_samples)
        if max_shift:
            waveform = time_shift(waveform, max_shift)
        if augment["noise_probability"] > 0:
            waveform = mix_noise(waveform, noise_bank, augment["noise_probability"], augment["noise_volume"])
        return waveform, label

    return (waveform_dataset(data, "train")
            .shuffle(split_size(data, "train"), seed=cfg["train"]["seed"], reshuffle_each_iteration=True)
            .map(augment_clip, num_parallel_calls=tf.data.AUTOTUNE)
            .batch(cfg["train"]["batch_size"])
            .prefetch(tf.data.AUTOTUNE))


def evaluation_dataset(data, split, batch_size):
    return waveform_dataset(data, split).batch(batch_size).prefetch(tf.data.AUTOTUNE)
