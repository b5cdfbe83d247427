"""Shared fixtures: the real datasets in ../shared/data (override the root with LSTM_APPS_SHARED_DATA)."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LSTM_APPS_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared(name):
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"{path} not found (set LSTM_APPS_SHARED_DATA to the shared data folder)")
    return path


@pytest.fixture(scope="session")
def fsdd_dir():
    return shared("fsdd")


@pytest.fixture(scope="session")
def speech_commands_core_dir():
    return shared("speech_commands_core")


@pytest.fixture(scope="session")
def speech_commands_sample_dir():
    return shared("speech_commands_v0.01_sample")


def assert_cache_trains_like_the_files(task, data_dir, tmp_path, settings):
    """Train `task` for one deterministic epoch twice, from the files (RUN tmp_path/files) and through a prepared
    cache (tmp_path/cache, RUN tmp_path/cached), with the same `settings`: the histories must be equal (epoch
    seconds aside)."""
    from lstm_apps.cli import main

    common = ["--data-dir", str(data_dir), "--set", "train.epochs=1", "train.deterministic=true", "train.verbose=2",
              *settings]
    assert main([task, "train", "--run-dir", str(tmp_path / "files"), *common]) == 0
    assert main([task, "train", "--run-dir", str(tmp_path / "cached"), "--data-cache", str(tmp_path / "cache"),
                 *common]) == 0
    rows = [(tmp_path / run / "history.csv").read_text().splitlines() for run in ("files", "cached")]
    histories = [{k: float(v) for k, v in zip(r[0].split(","), r[1].split(",")) if k != "epoch_seconds"} for r in rows]
    assert histories[1] == pytest.approx(histories[0], rel=1e-6) and "val_loss" in histories[0]
