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
