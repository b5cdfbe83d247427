"""Bad language-model input: one line naming the file/argument, exit code 2, no traceback, no run dir."""

import pytest

from lstm_apps.cli import main


@pytest.fixture
def small_corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    line = "the cat sat on the mat and the dog sat on the log\n"
    for split, lines in (("train", 200), ("valid", 40), ("test", 40)):
        (folder / f"{split}.txt").write_text(line * lines, encoding="utf-8")
    return folder


def run(capsys, *args):
    code = main(["language-model", *args])
    return code, capsys.readouterr().err.strip()


def assert_one_line(code, err, *expected):
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in err, err


def train(capsys, data_dir, run_dir, *extra):
    return run(capsys, "train", "--data-dir", str(data_dir), "--run-dir", str(run_dir), "--set", "train.epochs=1",
               "model.units=8", "model.embedding_dim=8", "train.batch_size=2", "train.bptt=5", *extra)


def test_empty_corpus(small_corpus, tmp_path, capsys):
    (small_corpus / "valid.txt").write_text("\n\n", encoding="utf-8")
    code, err = train(capsys, small_corpus, tmp_path / "run")
    assert_one_line(code, err, "valid.txt: empty corpus")
    assert not (tmp_path / "run").exists()


def test_not_utf8(small_corpus, tmp_path, capsys):
    (small_corpus / "train.txt").write_bytes(b"the cat\nthe \xe9t\xe9\n")
    code, err = train(capsys, small_corpus, tmp_path / "run")
    assert_one_line(code, err, "train.txt:2:5: not UTF-8 text")
    assert not (tmp_path / "run").exists()


def test_bptt_and_batch_larger_than_the_split(small_corpus, tmp_path, capsys):
    code, err = train(capsys, small_corpus, tmp_path / "run", "train.bptt=500")
    assert_one_line(code, err, "valid.txt: 560 tokens are too few for batch_size 2 x bptt 500",
                    "lower train.batch_size or train.bptt")
    code, err = train(capsys, small_corpus, tmp_path / "run", "train.batch_size=400")
    assert_one_line(code, err, "valid.txt", "batch_size 400")
    assert not (tmp_path / "run").exists()


def test_folder_without_a_corpus(tmp_path, capsys):
    (tmp_path / "nothing").mkdir()
    code, err = train(capsys, tmp_path / "nothing", tmp_path / "run")
    assert_one_line(code, err, "no training file found", "ptb.train.txt")


def test_unknown_optimizer_and_split(small_corpus, tmp_path, capsys):
    code, err = train(capsys, small_corpus, tmp_path / "run", "train.optimizer=rmsprop")
    assert_one_line(code, err, "train.optimizer: unknown optimizer 'rmsprop'")


def test_prompt_of_unknown_words_and_bad_score_file(small_corpus, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, err = train(capsys, small_corpus, run_dir)
    assert code == 0, err
    code, err = run(capsys, "predict", "--run-dir", str(run_dir), "the cat", "zebra quasar")
    assert_one_line(code, err, "prompt 'zebra quasar': every word is out of the vocabulary")
    assert capsys.readouterr().out == "", "nothing is answered before every prompt is checked"
    code, err = run(capsys, "predict", "--run-dir", str(run_dir), "--score", str(tmp_path / "missing.txt"))
    assert_one_line(code, err, "missing.txt: no such file")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    code, err = run(capsys, "predict", "--run-dir", str(run_dir), "--score", str(bad))
    assert_one_line(code, err, "latin1.txt:1:4: not UTF-8 text")
    code, err = run(capsys, "predict", "--run-dir", str(run_dir))
    assert_one_line(code, err, "expected at least one prompt (or --score FILE)")
    code, err = run(capsys, "evaluate", "--run-dir", str(run_dir), "--split", "dev")
    assert_one_line(code, err, "--split dev: expected one of train, valid, test")
