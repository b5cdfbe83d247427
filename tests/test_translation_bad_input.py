"""Bad translation input: one line naming the file/argument, exit code 2, no traceback, nothing half-written."""
import json

import pytest

from lstm_apps.cli import main

TINY = ["--set", "train.epochs=1", "model.units=8", "model.embedding_dim=8", "tokenizer.source_vocab=100",
        "tokenizer.target_vocab=100", "decode.max_source_length=12"]


@pytest.fixture
def small_corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    pairs = {"a dog runs on the grass .": "ein Hund rennt auf dem Gras .",
             "two men play football in a park .": "zwei Männer spielen Fußball in einem Park .",
             "a woman is reading a book .": "eine Frau liest ein Buch ."}
    for split, times in (("train", 40), ("val", 5), ("test_2016_flickr", 5)):
        (folder / f"{split}.en").write_text("".join(f"{s}\n" for s in pairs) * times, encoding="utf-8")
        (folder / f"{split}.de").write_text("".join(f"{t}\n" for t in pairs.values()) * times, encoding="utf-8")
    return folder


def run(capsys, *args):
    code = main(["translation", *args])
    captured = capsys.readouterr()
    return code, captured.err.strip(), captured.out


def assert_one_line(code, err, *expected):
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("lstm-apps")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in lines[0], err


def train(capsys, data_dir, run_dir):
    return run(capsys, "train", "--data-dir", str(data_dir), "--run-dir", str(run_dir), *TINY)


def test_misaligned_files_name_both_files_and_counts(small_corpus, tmp_path, capsys):
    (small_corpus / "val.de").write_text("nur eine Zeile\n", encoding="utf-8")
    code, err, _ = train(capsys, small_corpus, tmp_path / "run")
    assert_one_line(code, err, "val.en has 15 lines but", "val.de has 1")
    assert not (tmp_path / "run").exists()


def test_not_utf8_names_file_line_and_column(small_corpus, tmp_path, capsys):
    (small_corpus / "train.de").write_bytes((small_corpus / "train.de").read_bytes().replace(b"M\xc3\xa4", b"M\xe4", 1))
    code, err, _ = train(capsys, small_corpus, tmp_path / "run")
    assert_one_line(code, err, "train.de:2:7: not UTF-8 text")
    assert not (tmp_path / "run").exists()


def test_missing_split_lists_what_is_there(small_corpus, tmp_path, capsys):
    (small_corpus / "val.en").unlink()
    code, err, _ = train(capsys, small_corpus, tmp_path / "run")
    assert_one_line(code, err, "no split 'val'", "found: test_2016_flickr, train, val")
    assert not (tmp_path / "run").exists()


def test_predict_rejects_empty_sentences_and_truncates_long_ones_with_a_warning(small_corpus, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert train(capsys, small_corpus, run_dir)[0] == 0
    code, err, _ = run(capsys, "predict", "--run-dir", str(run_dir), "a dog runs .", "  ")
    assert_one_line(code, err, "input 2: empty sentence")
    long_sentence = " ".join(["a dog runs on the grass ."] * 6)
    code, err, out = run(capsys, "predict", "--run-dir", str(run_dir), long_sentence, "a dog .")
    assert code == 0
    assert err.splitlines()[-1].startswith("warning: input 1:") and "truncated to the model's limit of 11" in err
    assert [json.loads(line)["input"] for line in out.strip().splitlines()] == [long_sentence, "a dog ."]
    with pytest.raises(SystemExit) as exit_info:  # --beam is checked by argparse (lstm_apps.config.positive_int)
        main(["translation", "predict", "--run-dir", str(run_dir), "a dog .", "--beam", "0"])
    assert_one_line(exit_info.value.code, capsys.readouterr().err.strip(),
                    "argument --beam: expected a positive integer, got '0'")
    code, err, _ = run(capsys, "evaluate", "--run-dir", str(run_dir), "--split", "test_2099")
    assert_one_line(code, err, "no split 'test_2099'")


def test_a_run_dir_without_metadata_still_evaluates_and_predicts(small_corpus, tmp_path, capsys):
    """The previous release wrote no metadata.json: the data folder is then the config's data.dir."""
    run_dir = tmp_path / "run"
    assert train(capsys, small_corpus, run_dir)[0] == 0
    (run_dir / "metadata.json").unlink()
    code, err, out = run(capsys, "evaluate", "--run-dir", str(run_dir), "--split", "val")
    assert code == 0, err
    metrics = json.loads(out.strip().splitlines()[-1])
    assert metrics["split"] == "valid" and metrics["sentences"] == 15
    assert json.loads((run_dir / "metrics-valid.json").read_text()) == metrics
    code, err, out = run(capsys, "predict", "--run-dir", str(run_dir), "a dog runs on the grass .")
    assert code == 0, err
    assert json.loads(out)["input"] == "a dog runs on the grass ."
