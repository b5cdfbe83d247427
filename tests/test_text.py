"""Corpus reading, the vocabulary (Python and in-graph ids agree), and the BPTT layout."""
import numpy as np
import pytest
import tensorflow as tf

from lstm_apps.errors import DataError
from lstm_apps.inputs.text import (EOS, EOS_ID, PAD_ID, UNK_ID, Vocabulary, bptt_windows, read_corpus, read_lines,
                                   stream)


def test_every_line_ends_with_eos_and_empty_lines_count(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text(" the cat sat \n\n a dog \n", encoding="utf-8")
    assert read_corpus(path) == ["the", "cat", "sat", EOS, EOS, "a", "dog", EOS]


def test_ptb_token_counts_match_the_published_ones(tmp_path):
    from conftest import shared
    ptb = shared("ptb")
    tokens = read_corpus(ptb / "ptb.valid.txt")
    assert len(tokens) == 73760  # PROVENANCE.md: 70390 words + 3370 <eos>
    vocabulary = Vocabulary.from_tokens(read_corpus(ptb / "ptb.train.txt"))
    assert len(vocabulary) == 10001  # the canonical 10k words (<unk> and <eos> included) + <pad>
    assert vocabulary.encode(tokens)[1] == 0  # PTB's vocabulary is closed


def test_vocabulary_order_cap_and_oov_counts():
    tokens = "b a b c b a <unk> d".split()
    vocabulary = Vocabulary.from_tokens(tokens)
    assert vocabulary.words == ["<pad>", "<unk>", "<eos>", "b", "a", "c", "d"]  # by count, ties alphabetical
    capped = Vocabulary.from_tokens(tokens, max_size=5)
    assert capped.words == ["<pad>", "<unk>", "<eos>", "b", "a"]
    ids, oov = capped.encode("a c zz <unk> b".split())
    assert ids.tolist() == [4, UNK_ID, UNK_ID, UNK_ID, 3] and oov == 2  # the literal <unk> is not out of vocabulary
    assert Vocabulary.from_json(capped.to_json()).words == capped.words


def test_in_graph_lookup_gives_the_python_ids():
    vocabulary = Vocabulary.from_tokens("b a b c b a".split())
    words = ["a", "b", "c", "<eos>", "never-seen", "<unk>"]
    in_graph = vocabulary.lookup()(tf.constant(words)).numpy().tolist()
    assert in_graph == vocabulary.encode(words)[0].tolist()
    assert vocabulary.lookup(invert=True)(tf.constant(in_graph)).numpy().astype(str).tolist()[:4] == words[:4]


def test_not_utf8_names_file_line_and_column(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"fine line\nok \xff here\n")
    with pytest.raises(DataError, match=r"bad.txt:2:4: not UTF-8 text \(byte 0xff\)"):
        read_lines(path)


def test_empty_corpus_is_an_error(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(DataError, match="empty.txt: empty corpus"):
        read_corpus(path)


def test_bptt_windows_continue_each_row():
    token_stream = stream(np.arange(3, 3 + 100, dtype=np.int32))
    inputs, targets = bptt_windows(token_stream, batch_size=4, bptt=5)
    assert inputs.shape == targets.shape == (5, 4, 5)  # 100 targets -> 4 rows of 25 -> 5 windows of 5
    assert token_stream[0] == EOS_ID and PAD_ID not in token_stream
    np.testing.assert_array_equal(targets[:, :, :-1], inputs[:, :, 1:])  # targets are the next tokens
    for row in range(4):
        joined = np.concatenate([inputs[w, row] for w in range(5)])
        np.testing.assert_array_equal(joined, token_stream[row * 25:(row + 1) * 25])  # window i+1 continues i
        assert targets[-1, row, -1] == token_stream[(row + 1) * 25]


def test_bptt_too_large_for_the_split_names_the_source():
    with pytest.raises(DataError, match=r"valid.txt: 20 tokens are too few for batch_size 4 x bptt 35"):
        bptt_windows(stream(np.arange(3, 23, dtype=np.int32)), 4, 35, source="valid.txt")
