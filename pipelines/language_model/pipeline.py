"""Token streams for the language model: BPTT windows (tf.data) for training, unigram statistics of the training
split (the output bias's start, and the perplexity floor a model must beat)."""
import numpy as np

from lstm_apps.inputs.text import PAD_ID, bptt_dataset, bptt_windows, stream

TRAINING_SPLITS = ("train", "valid")


def check_windows(cfg, data):
    """Each training split must fill at least one batch_size x bptt window (DataError naming the file)."""
    for split in TRAINING_SPLITS:
        bptt_windows(stream(data.ids[split]), cfg["train"]["batch_size"], cfg["train"]["bptt"], data.files[split])


def training_datasets(cfg, data, vocabulary):
    """(train, valid) BPTT window datasets of the splits' streams under the run's vocabulary, in order."""
    train_cfg = cfg["train"]
    return tuple(bptt_dataset(stream(data.encode(split, vocabulary)[0]), train_cfg["batch_size"], train_cfg["bptt"],
                              data.files[split]) for split in TRAINING_SPLITS)


def unigram_log_probs(train_ids, vocab_size):
    """Add-one log unigram probabilities of the training stream (padding gets a tiny probability)."""
    counts = np.bincount(stream(train_ids)[1:], minlength=vocab_size).astype(np.float64) + 1.0
    counts[PAD_ID] = 1e-6
    return np.log(counts / counts.sum())


def unigram_perplexity(train_ids, ids, vocab_size):
    """Perplexity of the add-one unigram model of the training split on `ids` (the floor an LM must beat)."""
    return float(np.exp(-unigram_log_probs(train_ids, vocab_size)[stream(ids)[1:]].mean()))
