"""tf.data for the keywords task: decoded clips (cached in memory, or prepared once into shards and streamed),
training augmentation, batches."""
from pathlib import Path

import numpy as np
import tensorflow as tf

from lstm_apps import distribute
from lstm_apps.errors import ConfigError, DataError, library_reason
from lstm_apps.inputs import shards
from lstm_apps.inputs.audio import check_audio_file, load_waveform_dataset, mix_noise, speed_perturb_clip, time_shift
from pipelines.keywords.data import SILENCE

CLIP_FEATURES = {"waveform": tf.io.FixedLenFeature([], tf.string), "label": tf.io.FixedLenFeature([], tf.int64)}


def decoded_clips(data, split, start=0):
    """(waveform, label id) for one split's clips from position `start` on: its files decoded in tf.data, then
    its silence clips."""
    files = data.files[split][start:]
    ds = tf.data.Dataset.zip(
        load_waveform_dataset(files, data.sample_rate, data.num_samples, data.audio_backend),
        tf.data.Dataset.from_tensor_slices(np.array(data.targets[split][start:], np.int32)))
    silence = data.silence.get(split)
    if silence is not None and len(silence):
        first = max(start - len(data.files[split]), 0)
        label = data.labels.index(SILENCE)
        ds = ds.concatenate(silence.dataset(first).map(lambda clip: (clip, tf.constant(label, tf.int32))))
    return ds


def waveform_dataset(data, split):
    """(waveform, label id) for one split, in a fixed order: streamed from its prepared shards, else decoded once
    and cached in memory."""
    if split in data.prepared:
        return shards.read(data.prepared[split], parse_clip(data.num_samples))
    return decoded_clips(data, split).cache()


# ----------------------------------------------------------------------------------------- prepared shards
def prepare_splits(data, cfg, cache_dir, splits, progress=None):
    """Decode each split once into shards under CACHE_DIR/<split> (`lstm_apps.inputs.shards`), unless shards made
    of the same files and settings are there; `data.prepared` then points the pipelines at them. Each file's header
    is checked as it is decoded; a bad file stops the prepare (DataError naming it), or with data.skip_bad_files it
    is left out and counted in the split's manifest. Returns {split: Manifest}."""
    data_cfg = cfg["data"]
    settings = {key: data_cfg[key] for key in ("split", "test_speaker", "words", "resample", "audio_backend",
                                               "clip_seconds", "silence_fraction", "shard_size")}
    settings |= {"sample_rate": data.sample_rate, "labels": data.labels}
    manifests = {}
    for split in splits:
        sources = data.files[split] + [f"{SILENCE}/{i}" for i in range(len(data.silence.get(split, ())))]
        made_of = shards.fingerprint(data.files[split] + data.noise_files, settings | {"split_name": split})
        folder = Path(cache_dir) / split
        manifests[split] = shards.prepare(folder, sources, _encoded_clips(data, split, data_cfg["resample"]),
                                          made_of, examples_per_shard=data_cfg["shard_size"],
                                          skip_bad=data_cfg["skip_bad_files"],
                                          progress=progress and (lambda done, total: progress(split, done, total)))
        data.prepared[split] = folder
    return manifests


def _encoded_clips(data, split, allow_resample):
    """`shards.prepare`'s `encoded`: the split's clips from a position on, decoded by a parallel tf.data pipeline;
    a file whose header is wrong, or that TensorFlow cannot decode, is a DataError in its place."""
    files = data.files[split]

    def header_problem(position):
        if position >= len(files):
            return None  # a silence clip, cut from noise already read
        try:
            check_audio_file(files[position], data.sample_rate, allow_resample, decode=False)
        except DataError as error:
            return error

    def encoded(start):
        position, total = start, len(files) + len(data.silence.get(split, ()))
        while position < total:
            try:
                for waveform, label in decoded_clips(data, split, position).as_numpy_iterator():
                    yield header_problem(position) or serialize_clip(waveform, label)
                    position += 1
            except tf.errors.OpError as error:  # that file stopped the pipeline: name it, go on after it
                yield header_problem(position) or DataError(
                    f"{files[position]}: not decodable audio ({library_reason(error)})")
                position += 1

    return encoded


def serialize_clip(waveform, label):
    feature = {"waveform": tf.train.Feature(bytes_list=tf.train.BytesList(value=[waveform.astype("<f4").tobytes()])),
               "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def parse_clip(num_samples):
    def parse(record):
        example = tf.io.parse_single_example(record, CLIP_FEATURES)
        waveform = tf.ensure_shape(tf.io.decode_raw(example["waveform"], tf.float32, little_endian=True), [num_samples])
        return waveform, tf.cast(example["label"], tf.int32)
    return parse


# ----------------------------------------------------------------------------------------- batches
def split_size(data, split):
    """Clips in a split (a prepared split counts what its shards hold: skipped files are not there)."""
    if split in data.prepared:
        return shards.Manifest.load(data.prepared[split]).examples
    return len(data.files[split]) + len(data.silence.get(split, ()))


def split_targets(data, split):
    """Label ids in the order `waveform_dataset` yields the clips (files, then silence)."""
    if split in data.prepared:
        labels = waveform_dataset(data, split).map(lambda _, label: label).batch(4096)
        return np.concatenate(list(labels.as_numpy_iterator()))
    silence = len(data.silence.get(split, ()))
    return np.array(data.targets[split] + ([data.labels.index(SILENCE)] * silence if silence else []), np.int32)


def shuffled_clips(data, cfg, share=(0, 1)):
    """The training clips in a new order every epoch. train.shuffle_buffer 0 shuffles the whole split (in memory);
    N > 0 holds N clips: prepared shards are then read in a shuffled order, interleaved, through that buffer, and
    `share` (worker, workers) reads only that worker's shards."""
    seed, buffer = cfg["train"]["seed"], cfg["train"]["shuffle_buffer"]
    if buffer and "train" in data.prepared:
        return shards.read(data.prepared["train"], parse_clip(data.num_samples), shuffle_buffer=buffer, seed=seed,
                           num_pipelines=share[1], pipeline=share[0])
    return waveform_dataset(data, "train").shuffle(buffer or split_size(data, "train"), seed=seed,
                                                   reshuffle_each_iteration=True)


def training_dataset(data, cfg, share=None):
    """Shuffled, augmented (speed change, time shift, noise mixing) batches; SpecAugment runs inside the model.
    Under multi_worker, streaming prepared shards (train.shuffle_buffer > 0), each worker reads its own shards and
    yields its part of every global batch (`distribute.PerWorker`): batch_size / workers clips, the same number
    of batches on every worker (its clips repeated to fill them; the split's last partial batch is left out)."""
    augment, batch_size = cfg["augment"], cfg["train"]["batch_size"]
    worker, workers = share or distribute.worker_share(cfg["train"])
    per_worker = workers > 1 and cfg["train"]["shuffle_buffer"] and "train" in data.prepared
    max_shift = int(augment["time_shift_ms"] * data.sample_rate / 1000)
    noise_bank = tf.constant(data.noise_bank)

    def augment_clip(waveform, label):
        if augment["speed_change"] > 0:
            waveform = speed_perturb_clip(waveform, augment["speed_change"], data.num_samples)
        if max_shift:
            waveform = time_shift(waveform, max_shift)
        if augment["noise_probability"] > 0:
            waveform = mix_noise(waveform, noise_bank, augment["noise_probability"], augment["noise_volume"])
        return waveform, label

    clips = shuffled_clips(data, cfg, (worker, workers) if per_worker else (0, 1))
    if not per_worker:
        return (clips.map(augment_clip, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
                .prefetch(tf.data.AUTOTUNE))
    if batch_size % workers:
        raise ConfigError(f"train.batch_size: {batch_size} clips do not divide by the {workers} workers; each "
                          "reads its own shards and brings an equal part of every batch")
    steps = split_size(data, "train") // batch_size
    print(f"worker {worker} of {workers}: streams its own shards (every {workers}th from shard {worker}), "
          f"{batch_size // workers} clips of each global batch of {batch_size}, {steps} batches an epoch", flush=True)
    return distribute.PerWorker(clips.repeat().map(augment_clip, num_parallel_calls=tf.data.AUTOTUNE)
                                .batch(batch_size // workers).take(steps).prefetch(tf.data.AUTOTUNE))


def evaluation_dataset(data, split, batch_size):
    return waveform_dataset(data, split).batch(batch_size).prefetch(tf.data.AUTOTUNE)
