"""Bad input: one line naming the file or key and what was expected, exit code 2, nothing written to the run dir."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from lstm_apps.cli import main


@pytest.fixture
def small_fsdd(tmp_path, fsdd_dir):
    """A valid FSDD-layout folder of 9 real clips (every split present)."""
    folder = tmp_path / "fsdd" / "recordings"
    folder.mkdir(parents=True)
    for digit in (0, 1, 2):
        for index in (0, 5, 10):
            name = f"{digit}_theo_{index}.wav"
            shutil.copy(fsdd_dir / "recordings" / name, folder / name)
    return folder.parent


def train(capsys, data_dir, run_dir, *extra):
    code = main(["keywords", "train", "--data-dir", str(data_dir), "--run-dir", str(run_dir),
                 "--set", "train.epochs=1", *extra])
    err = capsys.readouterr().err.strip()
    return code, err


def assert_clean_failure(code, err, run_dir, *expected):
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for text in expected:
        assert text in err, err
    assert not run_dir.exists(), "a failed start must not create the run dir"


def test_truncated_wav(small_fsdd, tmp_path, capsys):
    bad = small_fsdd / "recordings" / "3_theo_12.wav"
    data = (small_fsdd / "recordings" / "0_theo_10.wav").read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    code, err = train(capsys, small_fsdd, tmp_path / "run")
    assert_clean_failure(code, err, tmp_path / "run", "3_theo_12.wav", "truncated")


def test_not_a_wav(small_fsdd, tmp_path, capsys):
    (small_fsdd / "recordings" / "3_theo_12.wav").write_text("this is not audio\n")
    code, err = train(capsys, small_fsdd, tmp_path / "run")
    assert_clean_failure(code, err, tmp_path / "run", "3_theo_12.wav", "not a readable audio file")


def test_stereo_file(small_fsdd, tmp_path, capsys):
    soundfile.write(small_fsdd / "recordings" / "3_theo_12.wav", np.zeros((800, 2)), 8000, subtype="PCM_16")
    code, err = train(capsys, small_fsdd, tmp_path / "run")
    assert_clean_failure(code, err, tmp_path / "run", "3_theo_12.wav", "2 channels, expected mono")


def test_odd_rate_file(small_fsdd, tmp_path, capsys):
    soundfile.write(small_fsdd / "recordings" / "3_theo_12.wav", np.zeros(4410), 44100, subtype="PCM_16")
    code, err = train(capsys, small_fsdd, tmp_path / "run")
    assert_clean_failure(code, err, tmp_path / "run", "3_theo_12.wav", "44100 Hz, expected 8000 Hz")


def test_odd_rate_file_is_resampled_when_asked(small_fsdd):
    from lstm_apps.config import build_config
    from pipelines.keywords import data as data_lib
    from pipelines.keywords.pipeline import waveform_dataset
    from pipelines.keywords.task import TASK

    tone = np.sin(np.arange(16000) * 2 * np.pi * 440 / 16000) * 0.5
    soundfile.write(small_fsdd / "recordings" / "3_theo_12.wav", tone, 16000, subtype="PCM_16")
    cfg = build_config(TASK.presets_dir, "quick", overrides=["data.resample=true"])
    data = data_lib.load(cfg, small_fsdd)
    waveforms = {path: w.numpy() for path, (w, _) in zip(data.files["train"], waveform_dataset(data, "train"))}
    resampled = waveforms[str(small_fsdd / "recordings" / "3_theo_12.wav")]
    expected = np.sin(np.arange(8000) * 2 * np.pi * 440 / 8000) * 0.5
    assert np.abs(resampled[100:-100] - expected[100:-100]).max() < 0.01


def test_empty_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, err = train(capsys, tmp_path / "empty", tmp_path / "run")
    assert_clean_failure(code, err, tmp_path / "run", "empty", "no audio found")


def test_file_name_without_label(small_fsdd, tmp_path, capsys):
    shutil.copy(small_fsdd / "recordings" / "0_theo_10.wav", small_fsdd / "recordings" / "hello.wav")
    code, err = train(capsys, small_fsdd, tmp_path / "run")
    assert_clean_failure(code, err, tmp_path / "run", "hello.wav", "<digit>_<speaker>_<index>.wav")


def test_speech_commands_clip_outside_word_folder(tmp_path, capsys, speech_commands_sample_dir):
    root = tmp_path / "sc"
    shutil.copytree(speech_commands_sample_dir / "yes", root / "yes")
    shutil.copy(next((root / "yes").iterdir()), root / "stray.wav")
    code, err = train(capsys, root, tmp_path / "run")
    assert_clean_failure(code, err, tmp_path / "run", "stray.wav", "not inside a word folder")


def test_wrong_data_dir(tmp_path, capsys):
    code, err = train(capsys, tmp_path / "does-not-exist", tmp_path / "run")
    assert_clean_failure(code, err, tmp_path / "run", "does-not-exist", "no such folder")


def test_bad_set_key(small_fsdd, tmp_path, capsys):
    code, err = train(capsys, small_fsdd, tmp_path / "run", "model.unitz=3")
    assert_clean_failure(code, err, tmp_path / "run", "model.unitz", "unknown key")


def test_unknown_model_name(small_fsdd, tmp_path, capsys):
    code, err = train(capsys, small_fsdd, tmp_path / "run", "model.name=transformer")
    assert_clean_failure(code, err, tmp_path / "run", "model.name", "lstm, attention")


@pytest.mark.parametrize("members, expected", [
    ("[[model.name=transformer]]", ["model.members[0]: model.name", "unknown model 'transformer'"]),
    ("[[], [train.epochs=0]]", ["model.members[1]: train.epochs", "expected a positive integer, got 0"]),
    ("[[], [model.conv_time_pool=0]]", ["model.members[1]: model.conv_time_pool", "expected a positive integer"]),
    ("[[], [model.unitz=3]]", ["model.members[1]", "unknown key 'model.unitz'"]),
    ("[[], [model.units]]", ["model.members[1]", "key=value"]),
    ("[model.name=crnn]", ["model.members[0]", "key=value"]),
    ("[[], [data.split=speaker]]", ["model.members[1]", "data.*"]),
    ("[[], [model.units=big]]", ["model.members[1]", "model.units", "expects a int"]),
])
def test_bad_ensemble_member(members, expected, small_fsdd, tmp_path, capsys):
    code, err = train(capsys, small_fsdd, tmp_path / "run", f"model.members={members}")
    assert_clean_failure(code, err, tmp_path / "run", *expected)


def test_predict_missing_and_bad_files(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    code = main(["keywords", "predict", "--run-dir", str(tmp_path / "run"), "a.wav"])
    assert code == 2 and "not a run dir" in capsys.readouterr().err


def test_console_script_prints_one_line(tmp_path):
    """The installed entry point itself: exit code 2, one stderr line, no traceback."""
    result = subprocess.run([sys.executable, "-m", "pipelines.keywords", "train", "--data-dir",
                             str(tmp_path / "nowhere"), "--run-dir", str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if "lstm-apps" in line]
    assert lines == [f"lstm-apps keywords train: error: --data-dir {tmp_path / 'nowhere'}: no such folder"]
    assert "Traceback" not in result.stderr


def test_a_folder_that_is_not_a_run_dir_is_one_clear_line(tmp_path, capsys):
    code = main(["captioning", "evaluate", "--run-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == (f"lstm-apps captioning evaluate: error: {tmp_path}: not a run dir (no config.yaml); "
                                 f"expected the --run-dir of train")


def test_usage_error_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["keywords", "train"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == ("lstm-apps keywords train: error: the following arguments are "
                                               "required: --run-dir (see --help)")


def test_the_console_script_writes_one_line_and_nothing_from_tensorflow(small_fsdd, tmp_path):
    """As a user runs it (a subprocess, so what TensorFlow's C++ runtime writes to fd 2 would show): a truncated
    WAV is exactly one stderr line in the project's words plus the library's reason, no op names or devices."""
    bad = small_fsdd / "recordings" / "3_theo_12.wav"
    data = (small_fsdd / "recordings" / "0_theo_10.wav").read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    result = subprocess.run([sys.executable, "-m", "pipelines.keywords", "train", "--data-dir", str(small_fsdd),
                             "--run-dir", str(tmp_path / "run")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"lstm-apps keywords train: error: {bad}: truncated or malformed WAV (data too short when trying to read "
        f"string); expected 16-bit PCM WAV"]
    verbose = subprocess.run([sys.executable, "-m", "lstm_apps.cli", "--verbose", "keywords", "train", "--data-dir",
                              str(small_fsdd), "--run-dir", str(tmp_path / "run")],
                             capture_output=True, text=True, timeout=300,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"})  # tox's tfio env sets 2
    assert verbose.returncode == 2 and len(verbose.stderr.splitlines()) > 1, "--verbose brings TF's logs back"
    assert verbose.stderr.splitlines()[-1] == result.stderr.strip()
