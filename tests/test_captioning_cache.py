"""Captioning from prepared shards (data.cache): the clip arrays of the feature files, the same training as from
the files, a bounded shuffle buffer that streams every clip captions_per_clip times an epoch, a changed feature
file rebuilds the cache."""
import numpy as np
import pytest

from lstm_apps.config import build_config
from pipelines.captioning import data as data_lib
from pipelines.captioning import pipeline, synthetic
from pipelines.captioning.task import TASK
from conftest import assert_cache_trains_like_the_files


@pytest.fixture(scope="module")
def clips_dir(tmp_path_factory):
    """Generated clips (real H.264 files), 1 per combination: 80 clips."""
    folder = tmp_path_factory.mktemp("clips")
    synthetic.generate(folder, clips_per_combination=1)
    return folder


def config(tmp_path, *overrides):
    return build_config(TASK.presets_dir, "quick", overrides=[f"data.cache={tmp_path / 'cache'}",
                                                              f"features.cache_dir={tmp_path / 'frames'}", *overrides])


def prepared(tmp_path, cfg, folder):
    data = data_lib.load(cfg, folder, pipeline.STREAMED_SPLITS)
    return data, pipeline.prepare_splits(data, cfg, tmp_path / "cache", pipeline.STREAMED_SPLITS)


def test_prepared_arrays_are_those_of_the_files_and_are_reused(clips_dir, tmp_path):
    cfg = config(tmp_path)
    data, manifests = prepared(tmp_path, cfg, clips_dir)
    in_memory = data_lib.load(config(tmp_path, "data.cache=null"), clips_dir, pipeline.STREAMED_SPLITS)
    for split in pipeline.STREAMED_SPLITS:
        arrays = pipeline.prepared_arrays(data.prepared[split])
        assert manifests[split].examples == len(arrays) == len(in_memory.arrays[split]) > 5
        assert sorted(arrays) == sorted(in_memory.arrays[split])
        assert all(arrays[c].dtype == np.uint8 and np.array_equal(arrays[c], in_memory.arrays[split][c])
                   for c in arrays)
    shard = data.prepared["train"] / manifests["train"].shards[0]
    written = shard.stat().st_mtime_ns
    prepared(tmp_path, cfg, clips_dir)
    assert shard.stat().st_mtime_ns == written  # same files, same settings: nothing written again


def test_a_bounded_buffer_streams_every_clip_captions_per_clip_times_an_epoch(clips_dir, tmp_path):
    cfg = config(tmp_path, "train.shuffle_buffer=8", "data.captions_per_clip=3")
    data, _ = prepared(tmp_path, cfg, clips_dir)
    vocabulary = pipeline.build_vocabulary(data.references("train"), 1)
    train, valid = pipeline.training_datasets(cfg, data, vocabulary)
    truth = {clip: array for clip, array in pipeline.prepared_arrays(data.prepared["train"]).items()}
    key = {array.tobytes(): clip for clip, array in truth.items()}
    orders = []
    for _ in range(2):
        seen = [key[array.tobytes()] for (arrays, _), _ in train.as_numpy_iterator() for array in arrays]
        assert sorted(seen) == sorted(list(truth) * 3)
        orders.append(seen)
    assert orders[0] != orders[1]
    references = data.references("valid")
    pairs = sum(len(references[c]) for c in data.arrays["valid"])
    assert sum(len(targets) for _, targets in valid.as_numpy_iterator()) == pairs


def test_a_changed_feature_file_rebuilds_the_cache(clips_dir, tmp_path):
    cfg = config(tmp_path)
    data, _ = prepared(tmp_path, cfg, clips_dir)
    clip = sorted(data.arrays["train"])[0]
    path = tmp_path / "frames" / f"{clip}.npy"
    np.save(path, np.zeros_like(np.load(path)))
    data, _ = prepared(tmp_path, cfg, clips_dir)
    assert not pipeline.prepared_arrays(data.prepared["train"])[clip].any()


def test_training_from_the_cache_equals_training_from_the_files(clips_dir, tmp_path):
    assert_cache_trains_like_the_files("captioning", clips_dir, tmp_path,
                                       [f"features.cache_dir={tmp_path / 'frames'}", "model.units=32"])
