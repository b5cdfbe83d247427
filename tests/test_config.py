import pytest

from lstm_apps import config, runner
from lstm_apps.errors import ConfigError, DataError
from pipelines.keywords.task import TASK


def test_presets_merge_and_set_overrides():
    cfg = config.build_config(TASK.presets_dir, "full", overrides=["train.epochs=3", "model.name=attention"])
    assert cfg["train"]["epochs"] == 3
    assert cfg["model"]["name"] == "attention"
    assert cfg["model"]["units"] == 128  # from full.yaml
    assert cfg["train"]["learning_rate"] == 0.003  # default kept from quick.yaml


def test_unknown_set_key_is_named():
    with pytest.raises(ConfigError, match="unknown key 'train.epoch'"):
        config.build_config(TASK.presets_dir, "quick", overrides=["train.epoch=3"])


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match="'train.epochs' expects a int"):
        config.build_config(TASK.presets_dir, "quick", overrides=["train.epochs=many"])


def test_keys_that_take_a_word_or_a_number():
    assert config.build_config(TASK.presets_dir, "quick", overrides=["train.backup_every=200"])["train"][
        "backup_every"] == 200
    for bad in ("often", "0", "1.5"):
        with pytest.raises(ConfigError, match="'train.backup_every' expects 'epoch' or a number of batches"):
            config.build_config(TASK.presets_dir, "quick", overrides=[f"train.backup_every={bad}"])
    assert config.build_config(TASK.presets_dir, "quick", overrides=["train.verbose=2"])["train"]["verbose"] == 2
    with pytest.raises(ConfigError, match="'train.verbose' expects auto, 0"):
        config.build_config(TASK.presets_dir, "quick", overrides=["train.verbose=3"])


def test_set_without_equals():
    with pytest.raises(ConfigError, match="expected key=value"):
        config.parse_set(["train.epochs"])


def test_config_file_and_unknown_preset(tmp_path):
    extra = tmp_path / "mine.yaml"
    extra.write_text("model:\n  units: 32\n")
    assert config.build_config(TASK.presets_dir, "quick", config_file=extra)["model"]["units"] == 32
    with pytest.raises(ConfigError, match="no such preset"):
        config.build_config(TASK.presets_dir, "huge")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        config.build_config(TASK.presets_dir, "quick", config_file=bad)


def test_full_preset_takes_the_variant_tuned_for_the_dataset(fsdd_dir, speech_commands_core_dir,
                                                             speech_commands_sample_dir, tmp_path):
    speakers = config.build_config(TASK.presets_dir, "speakers", overrides=["train.epochs=3"])
    for sc_dir in (speech_commands_core_dir, speech_commands_sample_dir):
        cfg = runner.build_train_config(TASK, sc_dir, "full", overrides=["train.epochs=3"])
        assert {**cfg, "data": None} == {**speakers, "data": None}  # the speaker-robust ensemble, --set still applies
        assert cfg["data"]["dir"] == str(sc_dir)  # as the user gave it
    fsdd = runner.build_train_config(TASK, fsdd_dir, "full")
    assert fsdd["model"]["members"] == [] and fsdd["features"]["num_mfcc"] == 0  # full.yaml itself
    assert runner.build_train_config(TASK, speech_commands_core_dir, "quick")["model"]["members"] == []
    assert runner.build_train_config(TASK, None, "full")["model"]["members"] == []  # data.dataset: fsdd
    assert runner.build_train_config(TASK, None, "full", overrides=["data.dataset=speech_commands"])[
        "model"]["members"] == speakers["model"]["members"]
    with pytest.raises(DataError, match="no audio found"):  # a folder with no audio still fails in read_data
        TASK.read_data(runner.build_train_config(TASK, tmp_path, "full"), tmp_path, runner.TRAINING_SPLITS)
