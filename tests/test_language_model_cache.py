"""The language model from prepared shards (data.cache): the BPTT windows of the files, the same training as from
the files, a changed file rebuilds the windows."""
import shutil

import numpy as np

from lstm_apps.config import build_config
from lstm_apps.inputs.text import bptt_windows, stream
from pipelines.language_model import data as data_lib
from pipelines.language_model import pipeline
from pipelines.language_model.task import TASK
from conftest import assert_cache_trains_like_the_files, shared

SMALL = ["data.train_tokens=20000", "train.batch_size=8", "train.bptt=20"]


def ptb_copy(tmp_path):
    """Real copies (the cache fingerprints each file's size and time) of PTB's three files."""
    folder = tmp_path / "ptb"
    folder.mkdir()
    for split in data_lib.SPLITS:
        shutil.copy2(shared("ptb") / f"ptb.{split}.txt", folder)
    return folder


def config(cache, *overrides):
    return build_config(TASK.presets_dir, "quick", overrides=[f"data.cache={cache}", *SMALL, *overrides])


def prepared(tmp_path, cfg, folder):
    data = data_lib.load(cfg, folder, pipeline.TRAINING_SPLITS)
    return data, pipeline.prepare_splits(data, cfg, tmp_path / "cache", pipeline.TRAINING_SPLITS)


def windows_of(data, split, cfg):
    batches = list(pipeline.prepared_windows(data.prepared[split], cfg["train"]).as_numpy_iterator())
    return np.stack([b[0] for b in batches]), np.stack([b[1] for b in batches])


def test_prepared_windows_are_the_bptt_windows_of_the_files_and_are_reused(tmp_path):
    folder = ptb_copy(tmp_path)
    cfg = config(tmp_path / "cache")
    data, manifests = prepared(tmp_path, cfg, folder)
    for split in pipeline.TRAINING_SPLITS:
        inputs, targets = bptt_windows(stream(data.ids[split]), 8, 20)
        assert manifests[split].examples == len(inputs) > 100
        prepared_inputs, prepared_targets = windows_of(data, split, cfg)
        np.testing.assert_array_equal(prepared_inputs, inputs)
        np.testing.assert_array_equal(prepared_targets, targets)
    shard = data.prepared["train"] / manifests["train"].shards[0]
    written = shard.stat().st_mtime_ns
    prepared(tmp_path, cfg, folder)
    assert shard.stat().st_mtime_ns == written  # same files, same settings: nothing written again
    data, _ = prepared(tmp_path, config(tmp_path / "cache", "train.bptt=10"), folder)
    assert windows_of(data, "train", config(tmp_path / "cache", "train.bptt=10"))[0].shape[1:] == (8, 10)


def test_a_changed_training_file_rebuilds_the_windows(tmp_path):
    folder = ptb_copy(tmp_path)
    cfg = config(tmp_path / "cache")
    data, _ = prepared(tmp_path, cfg, folder)
    before = windows_of(data, "train", cfg)[0][0, 0, 1:6]  # the first row starts with <eos>, then the first line
    path = folder / "ptb.train.txt"
    path.write_text(" the zebra juggles seven violins\n" + path.read_text())
    data, _ = prepared(tmp_path, cfg, folder)
    after = windows_of(data, "train", cfg)[0][0, 0, 1:6]
    assert after.tolist() == data.vocabulary.encode("the zebra juggles seven violins".split())[0].tolist()
    assert after.tolist() != before.tolist()


def test_training_from_the_cache_equals_training_from_the_files(tmp_path):
    assert_cache_trains_like_the_files("language-model", ptb_copy(tmp_path), tmp_path,
                                       [*SMALL, "model.units=32", "model.embedding_dim=32", "model.layers=1"])
