"""Train -> evaluate -> predict -> export on real FSDD clips, and the export answering like the Keras model in a
fresh Python process."""
import csv
import json
import shutil
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import soundfile
import tensorflow as tf
import yaml

from lstm_apps.cli import main
from lstm_apps.config import build_config
from lstm_apps.export import read_warmup_requests
from pipelines.keywords.model import build_model
from pipelines.keywords.task import TASK

EPOCHS = 6


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, fsdd_dir):
    run_dir = tmp_path_factory.mktemp("keywords") / "run"
    assert main(["keywords", "train", "--data-dir", str(fsdd_dir), "--run-dir", str(run_dir),
                 "--set", f"train.epochs={EPOCHS}"]) == 0
    return run_dir


def test_training_wrote_a_self_describing_run(trained_run):
    for name in ("config.yaml", "labels.json", "model.keras", "best.weights.h5", "history.csv",
                 "learning_curve.png"):
        assert (trained_run / name).exists(), name
    assert not (trained_run / "backup").exists(), "the backup is removed once training has finished"
    assert list((trained_run / "logs").rglob("events.out.tfevents*")), "TensorBoard logs"
    with open(trained_run / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    losses = [float(row["loss"]) for row in rows]
    assert len(rows) == EPOCHS and losses[-1] < 0.6 * losses[0], "training loss must fall"
    assert all(float(row["epoch_seconds"]) > 0 for row in rows), "each epoch's wall time is logged"


def test_evaluate_is_well_above_chance_on_held_out_clips(trained_run, capsys):
    assert main(["keywords", "evaluate", "--run-dir", str(trained_run), "--split", "test"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    saved = json.loads((trained_run / "metrics-test.json").read_text())
    assert printed == saved
    assert saved["examples"] == 300 and saved["accuracy"] > 0.6  # chance is 0.1
    assert set(saved["per_class"]) == {str(d) for d in range(10)}
    assert np.trace(np.array(saved["confusion_matrix"])) == round(saved["accuracy"] * 300)
    assert (trained_run / "confusion-test.png").stat().st_size > 1000


def test_predict_reads_wav_flac_and_ogg(trained_run, fsdd_dir, tmp_path, capsys):
    source = fsdd_dir / "recordings" / "7_jackson_0.wav"
    samples, rate = soundfile.read(source)
    flac, ogg = tmp_path / "seven.flac", tmp_path / "seven.ogg"
    soundfile.write(flac, samples, rate)
    soundfile.write(ogg, samples, rate)
    assert main(["keywords", "predict", "--run-dir", str(trained_run), str(source), str(flac), str(ogg)]) == 0
    results = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["input"] for r in results] == [str(source), str(flac), str(ogg)]
    assert results[0]["label"] == results[1]["label"]  # FLAC is lossless: same input, same answer
    assert results[0]["probability"] == pytest.approx(results[1]["probability"], abs=1e-5)
    assert all(0 < r["probability"] <= 1 for r in results)


def test_the_run_dir_keeps_the_users_config_and_records_the_facts(trained_run, fsdd_dir):
    """config.yaml is the configuration as given (data.dir as typed, no rate filled in); what reading the data
    found (resolved folder, sample rate, labels, library versions) is in metadata.json."""
    cfg = yaml.safe_load((trained_run / "config.yaml").read_text())
    assert cfg["data"]["dir"] == str(fsdd_dir) and cfg["data"]["sample_rate"] is None
    facts = json.loads((trained_run / "metadata.json").read_text())
    assert facts["data_dir"] == str(fsdd_dir.resolve()) and facts["sample_rate"] == 8000
    assert facts["labels"] == [str(d) for d in range(10)] and facts["clips"] == {"train": 2400, "valid": 300,
                                                                                "test": 300}
    assert facts["versions"]["tensorflow"] == tf.__version__ and facts["versions"]["keras"] == keras.__version__


def test_evaluate_reads_another_copy_of_the_data(trained_run, fsdd_dir, tmp_path, capsys):
    """evaluate --data-dir points a finished run at another copy of its data: the same clips give the same
    metrics, and a damaged clip in the copy is named (so the copy, not the original, was read)."""
    copy = tmp_path / "fsdd-copy"
    shutil.copytree(fsdd_dir / "recordings", copy / "recordings")
    assert main(["keywords", "evaluate", "--run-dir", str(trained_run), "--split", "val"]) == 0
    original = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["keywords", "evaluate", "--run-dir", str(trained_run), "--split", "valid", "--data-dir",
                 str(copy)]) == 0
    copied = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert original["split"] == copied["split"] == "valid"  # `val` is read as `valid`
    assert copied["accuracy"] == original["accuracy"] and copied["examples"] == 300
    (copy / "recordings" / "7_theo_5.wav").write_bytes(b"RIFF")
    assert main(["keywords", "evaluate", "--run-dir", str(trained_run), "--data-dir", str(copy)]) == 2
    assert str(copy / "recordings" / "7_theo_5.wav") in capsys.readouterr().err


def test_a_run_dir_of_the_previous_release_still_serves(trained_run, fsdd_dir, tmp_path, capsys):
    """A run dir written before metadata.json existed (its config.yaml held the resolved data dir and the rate)
    still evaluates and predicts."""
    old = tmp_path / "old-run"
    shutil.copytree(trained_run, old)
    (old / "metadata.json").unlink()
    cfg = yaml.safe_load((old / "config.yaml").read_text())
    cfg["data"].update(dir=str(fsdd_dir.resolve()), sample_rate=8000)
    (old / "config.yaml").write_text(yaml.safe_dump(cfg))
    clip = str(fsdd_dir / "recordings" / "7_jackson_0.wav")
    assert main(["keywords", "predict", "--run-dir", str(trained_run), clip]) == 0
    assert main(["keywords", "predict", "--run-dir", str(old), clip]) == 0
    new_answer, old_answer = (json.loads(line) for line in capsys.readouterr().out.strip().splitlines())
    assert old_answer == new_answer
    assert main(["keywords", "evaluate", "--run-dir", str(old)]) == 0


def test_a_successful_predict_writes_nothing_on_stderr(trained_run, fsdd_dir):
    """As a user runs it (a subprocess: the C++ runtime's fd 2 included): answers on stdout, stderr empty."""
    clip = str(fsdd_dir / "recordings" / "7_jackson_0.wav")
    result = subprocess.run([sys.executable, "-m", "pipelines.keywords", "predict", "--run-dir", str(trained_run),
                             clip], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stderr == ""
    assert json.loads(result.stdout)["input"] == clip


FRESH_PROCESS = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    serving = tf.saved_model.load(sys.argv[1]).signatures
    paths = sys.argv[3:]
    waveforms = np.load(sys.argv[2])
    by_wave = serving["serving_default"](waveform=tf.constant(waveforms))
    by_wav = serving["serving_wav"](wav=tf.constant([tf.io.read_file(p).numpy() for p in paths]))
    print(json.dumps({
        "labels": [s.decode() for s in by_wave["label"].numpy()],
        "wav_labels": [s.decode() for s in by_wav["label"].numpy()],
        "probabilities": by_wave["probabilities"].numpy().tolist(),
        "wav_probabilities": by_wav["probabilities"].numpy().tolist(),
    }))
""")


def test_export_answers_like_the_keras_model_in_a_fresh_process(trained_run, fsdd_dir, tmp_path, capsys):
    assert_export_answers_like_the_keras_model(trained_run, fsdd_dir, tmp_path, capsys)


HELD_OUT_CLIPS = [(0, "george", 0), (3, "lucas", 1), (5, "nicolas", 2), (8, "yweweler", 3), (9, "theo", 4)]


def held_out_clips(fsdd_dir):
    """Five test-split FSDD recordings (paths) and their waveforms, padded/cut to the model's 1 s."""
    paths = [fsdd_dir / "recordings" / f"{d}_{s}_{i}.wav" for d, s, i in HELD_OUT_CLIPS]
    return paths, np.stack([np.pad(soundfile.read(p, dtype="float32")[0], (0, 8000))[:8000] for p in paths])


def assert_export_answers_like_the_keras_model(run_dir, fsdd_dir, tmp_path, capsys):
    """Two exports become versions 1 and 2; in a fresh process both signatures answer like model.keras."""
    export_dir = tmp_path / "export"
    assert main(["keywords", "export", "--run-dir", str(run_dir), "--export-dir", str(export_dir)]) == 0
    assert main(["keywords", "export", "--run-dir", str(run_dir), "--export-dir", str(export_dir)]) == 0
    assert sorted(p.name for p in export_dir.iterdir()) == ["1", "2"], "versions only, no staging folders left"
    version = export_dir / "1"
    assert (version / "saved_model.pb").exists()
    warmup = read_warmup_requests(version)
    assert set(warmup) == {"serving_default", "serving_wav"}

    paths, waveforms = held_out_clips(fsdd_dir)
    model = keras.saving.load_model(run_dir / "model.keras")
    labels = json.loads((run_dir / "labels.json").read_text())
    expected = model.predict(waveforms, verbose=0)
    np.save(tmp_path / "waveforms.npy", waveforms)
    script = tmp_path / "serve.py"
    script.write_text(FRESH_PROCESS)
    result = subprocess.run([sys.executable, str(script), str(version), str(tmp_path / "waveforms.npy"),
                             *map(str, paths)], capture_output=True, text=True, timeout=300, check=True)
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(answer["probabilities"], expected, atol=1e-5)
    np.testing.assert_allclose(answer["wav_probabilities"], expected, atol=1e-5)
    assert answer["labels"] == answer["wav_labels"] == [labels[i] for i in expected.argmax(-1)]

    capsys.readouterr()
    assert main(["keywords", "predict", "--model", str(export_dir), *map(str, paths)]) == 0
    served = [json.loads(line)["label"] for line in capsys.readouterr().out.strip().splitlines()]
    assert served == answer["labels"]


def test_saved_model_cli_shows_both_signatures(trained_run, tmp_path):
    export_dir = tmp_path / "export"
    assert main(["keywords", "export", "--run-dir", str(trained_run), "--export-dir", str(export_dir)]) == 0
    cli = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--dir", str(export_dir / "1"),
           "--tag_set", "serve", "--signature_def"]
    default = subprocess.run([*cli, "serving_default"], capture_output=True, text=True, check=True).stdout
    assert "inputs['waveform'] tensor_info" in default and "outputs['label']" in default
    wav = subprocess.run([*cli, "serving_wav"], capture_output=True, text=True, check=True).stdout
    assert "inputs['wav'] tensor_info" in wav and "DT_STRING" in wav


@pytest.mark.slow
@pytest.mark.parametrize("model_name, overrides", [("attention", []),
                                                    ("crnn", ["features.num_mfcc=0", "model.conv_time_pool=2"])])
def test_the_other_models_learn_held_out_clips(model_name, overrides, fsdd_dir, tmp_path, capsys):
    """The attention-pooling and CRNN variants train through the same CLI and beat chance (0.1) on held-out clips;
    the CRNN on log-mel features, as its docstring asks, with its time pooling (the ensemble test below runs it
    without)."""
    run_dir = tmp_path / model_name
    assert main(["keywords", "train", "--data-dir", str(fsdd_dir), "--run-dir", str(run_dir), "--set",
                 "train.epochs=4", f"model.name={model_name}", *overrides]) == 0
    capsys.readouterr()
    assert main(["keywords", "evaluate", "--run-dir", str(run_dir)]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["examples"] == 300 and metrics["accuracy"] > 0.6


def test_crnn_time_pooling_halves_the_lstm_steps():
    steps = {}
    for pool in (1, 2):
        cfg = build_config(TASK.presets_dir, "quick", overrides=["model.name=crnn", f"model.conv_time_pool={pool}"])
        model = build_model(cfg, num_classes=10, sample_rate=8000, num_samples=8000,
                            normalizer=keras.layers.Normalization(axis=-1, mean=0.0, variance=1.0))
        steps[pool] = model.get_layer("frames").output.shape[1]
        assert model.get_layer("features").output.shape[1] == 49  # 1 s at 8 kHz, 25 ms frames every 20 ms
    assert steps == {1: 49, 2: 25}  # an odd frame count keeps its last frame (padding="same")


@pytest.mark.slow
def test_an_ensemble_averages_its_members_resumes_and_exports(fsdd_dir, tmp_path, capsys):
    """model.members: each member is an ordinary run under RUN_DIR/members/; the ensemble's probabilities are the
    mean of its members'; a rerun retrains no finished member; the export still takes raw waveforms."""
    run_dir = tmp_path / "ensemble"
    train = ["keywords", "train", "--data-dir", str(fsdd_dir), "--run-dir", str(run_dir), "--set", "train.epochs=4",
             "model.members=[[], [model.name=crnn, features.num_mfcc=0, train.seed=2]]"]
    assert main(train) == 0
    member_files = [run_dir / "members" / str(index) / "model.keras" for index in (0, 1)]
    members = [keras.saving.load_model(path) for path in member_files]
    assert [member.name for member in members] == ["keywords_lstm", "keywords_crnn"]
    _, waveforms = held_out_clips(fsdd_dir)
    expected = np.mean([member.predict(waveforms, verbose=0) for member in members], axis=0)
    ensemble = keras.saving.load_model(run_dir / "model.keras")
    np.testing.assert_allclose(ensemble.predict(waveforms, verbose=0), expected, atol=1e-6)

    capsys.readouterr()
    assert main(["keywords", "evaluate", "--run-dir", str(run_dir)]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["examples"] == 300 and metrics["accuracy"] > 0.6  # chance is 0.1

    finished_at = [path.stat().st_mtime_ns for path in member_files]
    (run_dir / "model.keras").unlink()  # as if stopped after its members had finished
    assert main(train) == 0
    assert [path.stat().st_mtime_ns for path in member_files] == finished_at, "finished members are reused"
    assert (run_dir / "model.keras").exists()

    assert_export_answers_like_the_keras_model(run_dir, fsdd_dir, tmp_path, capsys)
