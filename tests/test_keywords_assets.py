"""The run's assets (labels, feature normaliser statistics): derived from the training split once, by the first
session, and read back (nothing written) by a resumed session or a non-chief worker."""
import json

import keras
import numpy as np
import pytest

from lstm_apps.config import build_config
from lstm_apps.run_dir import RunDir
from pipelines.keywords import data as data_lib
from pipelines.keywords.model import build_model, clip_features
from pipelines.keywords.task import LABELS_FILE, NORMALIZER_FILE, TASK, adapted_normalizer, training_assets


class UnwritableRunDir(RunDir):
    """A run dir that must not be written to."""

    def save_json(self, name, obj):
        raise AssertionError(f"wrote {name}")

    def save_model(self, model):
        raise AssertionError("wrote the model")

    def write_metadata(self, facts):
        raise AssertionError("wrote the metadata")


@pytest.fixture(scope="module")
def cfg():
    return build_config(TASK.presets_dir, "quick")


@pytest.fixture(scope="module")
def data(cfg, fsdd_dir):
    return data_lib.load(cfg, fsdd_dir)


@pytest.fixture(scope="module")
def adapted(cfg, data):
    return adapted_normalizer(cfg, data)


def mtimes(path):
    return {p.name: p.stat().st_mtime_ns for p in path.iterdir()}


def test_the_second_session_reads_the_assets_back_and_writes_nothing(cfg, data, tmp_path):
    first = TASK.prepare_run(cfg, data, RunDir(tmp_path))
    assert json.loads((tmp_path / LABELS_FILE).read_text()) == data.labels
    assert json.loads((tmp_path / NORMALIZER_FILE).read_text()) == first["normalizer"]
    written = mtimes(tmp_path)
    assert set(written) == {LABELS_FILE, NORMALIZER_FILE}
    second = TASK.prepare_run(cfg, data, UnwritableRunDir(tmp_path))
    assert second == first
    assert mtimes(tmp_path) == written
    assert first == training_assets(cfg, data)


def test_the_model_built_from_read_back_assets_has_the_adapted_normaliser(cfg, data, adapted, tmp_path):
    TASK.prepare_run(cfg, data, RunDir(tmp_path))
    assets = TASK.prepare_run(cfg, data, UnwritableRunDir(tmp_path))
    normalizer = TASK.build_model(cfg, data, assets).get_layer("normalize")
    expected = adapted.get_weights()
    assert len(normalizer.get_weights()) == len(expected) == 3  # mean, variance, count: the layout adapt leaves
    for got, want in zip(normalizer.get_weights(), expected):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)  # bit-identical
    # the layer computes with the weights it was given (set_weights alone leaves call() the initial ones)
    features = clip_features(cfg, data.sample_rate)(np.random.default_rng(0).normal(size=(4, data.num_samples))
                                                    .astype("float32"))
    np.testing.assert_array_equal(np.asarray(normalizer(features)), np.asarray(adapted(features)))


def test_models_built_either_way_share_one_weights_layout(cfg, data, adapted, tmp_path):
    """model.keras files and backups of the previous release (normaliser adapted in build_model) load into the
    model built from the assets, and the other way round."""
    old = build_model(cfg, len(data.labels), data.sample_rate, data.num_samples, adapted)
    new = TASK.build_model(cfg, data, training_assets(cfg, data))
    assert [(w.path, w.shape) for w in new.weights] == [(w.path, w.shape) for w in old.weights]
    for a, b in zip(new.get_weights(), old.get_weights()):
        assert a.dtype == b.dtype
    old.save(tmp_path / "old.keras")
    new.load_weights(tmp_path / "old.keras")
    loaded = keras.saving.load_model(tmp_path / "old.keras")
    np.testing.assert_array_equal(loaded.get_layer("normalize").get_weights()[0], adapted.get_weights()[0])
    new.save_weights(tmp_path / "new.weights.h5")
    old.load_weights(tmp_path / "new.weights.h5")


def test_a_run_dir_without_normalizer_json_gains_one(cfg, data, tmp_path):
    """A run dir of the release before normalizer.json: its labels are kept, the statistics computed and saved."""
    (tmp_path / LABELS_FILE).write_text(json.dumps(data.labels))
    labels_written = (tmp_path / LABELS_FILE).stat().st_mtime_ns
    assets = TASK.prepare_run(cfg, data, RunDir(tmp_path))
    assert (tmp_path / LABELS_FILE).stat().st_mtime_ns == labels_written
    assert json.loads((tmp_path / NORMALIZER_FILE).read_text()) == assets["normalizer"]
    assert assets == training_assets(cfg, data)


def test_an_ensemble_run_keeps_only_the_labels(cfg, data, tmp_path):
    ensemble_cfg = {**cfg, "model": {**cfg["model"], "members": [[], ["model.units=32"]]}}
    assert TASK.prepare_run(ensemble_cfg, data, RunDir(tmp_path)) == {"labels": data.labels}
    assert sorted(p.name for p in tmp_path.iterdir()) == [LABELS_FILE]


def test_a_run_whose_labels_differ_from_the_data_is_refused(cfg, data, tmp_path):
    from lstm_apps.errors import DataError

    (tmp_path / LABELS_FILE).write_text(json.dumps(data.labels[:-1]))
    with pytest.raises(DataError, match="differ from the run's"):
        TASK.prepare_run(cfg, data, UnwritableRunDir(tmp_path))
