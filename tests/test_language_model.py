"""The language-model task on real PTB text: perplexity against a direct computation, training beating the unigram
model, generation and scoring, and the export answering like the Keras model in a fresh Python process."""
import collections
import json
import math
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from lstm_apps.cli import main
from lstm_apps.config import build_config
from lstm_apps.inputs.text import EOS_ID, Vocabulary, read_corpus, stream
from lstm_apps.metrics import Perplexity
from lstm_apps.run_dir import RunDir
from pipelines.language_model.inference import stream_log_likelihood
from pipelines.language_model.model import build_network, inference_network, zero_states
from pipelines.language_model.task import TASK

TRAIN = ["--set", "train.epochs=2", "data.train_tokens=200000"]


def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_stream_perplexity_equals_a_direct_computation():
    """Windows of 7 tokens with the state carried == one pass over the whole stream, scored with numpy."""
    cfg = build_config(TASK.presets_dir, "quick", overrides=["model.units=16", "model.embedding_dim=8"])
    network = build_network(cfg, vocab_size=30)
    token_stream = stream(np.random.default_rng(0).integers(3, 30, 60).astype(np.int32))
    log_likelihood, count = stream_log_likelihood(network, token_stream, window=7)
    logits = network([tf.constant(token_stream[None, :-1]), *zero_states(network, 1)])[0].numpy()[0]
    direct = log_softmax(logits.astype(np.float64))[np.arange(60), token_stream[1:]].sum()
    assert count == 60
    assert log_likelihood == pytest.approx(direct, rel=1e-5)


def test_perplexity_metric_is_exp_of_the_mean_cross_entropy():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 3, 4, 6)).astype(np.float32)
    targets = rng.integers(0, 6, (2, 3, 4))
    metric = Perplexity()
    for batch in range(2):
        metric.update_state(targets[batch], logits[batch])
    nll = -log_softmax(logits.astype(np.float64))[np.arange(2)[:, None, None], np.arange(3)[None, :, None],
                                                  np.arange(4)[None, None], targets]
    assert float(metric.result()) == pytest.approx(math.exp(nll.mean()), rel=1e-5)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, request):
    from conftest import shared
    ptb = shared("ptb")
    run_dir = tmp_path_factory.mktemp("lm") / "run"
    assert main(["language-model", "train", "--data-dir", str(ptb), "--run-dir", str(run_dir), *TRAIN]) == 0
    return ptb, run_dir


def unigram_perplexity_by_hand(train_tokens, tokens):
    counts = collections.Counter(train_tokens)
    total = sum(counts.values()) + len(counts) + 1
    return math.exp(-np.mean([math.log((counts[t] + 1) / total) for t in tokens]))


def test_quick_training_beats_the_unigram_model(trained_run, capsys):
    ptb, run_dir = trained_run
    for name in ("config.yaml", "vocabulary.json", "model.keras", "history.csv", "learning_curve.png"):
        assert (run_dir / name).exists(), name
    rows = (run_dir / "history.csv").read_text().splitlines()
    header, values = rows[0].split(","), [dict(zip(rows[0].split(","), r.split(","))) for r in rows[1:]]
    assert "val_perplexity" in header and float(values[-1]["loss"]) < float(values[0]["loss"])
    assert main(["language-model", "evaluate", "--run-dir", str(run_dir), "--split", "valid"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["tokens"] == 73760 and metrics["oov_tokens"] > 0  # every token of the split, <eos> included
    train_tokens = read_corpus(ptb / "ptb.train.txt")[:200000]
    vocabulary = set(train_tokens)
    valid = [t if t in vocabulary else "<unk>" for t in read_corpus(ptb / "ptb.valid.txt")]
    unigram = unigram_perplexity_by_hand(train_tokens, valid)
    assert 400 < unigram < 900
    assert metrics["perplexity"] < 0.6 * unigram, (metrics["perplexity"], unigram)
    assert metrics["loss"] == pytest.approx(math.log(metrics["perplexity"]))


def test_predict_generates_reproducibly_and_scores_a_file(trained_run, tmp_path, capsys):
    _, run_dir = trained_run
    prompt = "the company said"
    args = ["language-model", "predict", "--run-dir", str(run_dir), prompt, "--max-tokens", "12"]
    assert main(args + ["--seed", "5"]) == 0 and main(args + ["--seed", "5"]) == 0 and main(args + ["--seed", "6"]) == 0
    first, again, other = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert first == again and first["input"] == prompt and 1 <= first["tokens"] <= 12
    assert first["tokens"] == len(first["continuation"].split())
    assert main(args + ["--temperature", "0"]) == 0
    greedy = json.loads(capsys.readouterr().out.strip())
    assert greedy["continuation"] == " ".join(greedy_by_hand(run_dir, prompt, 12))
    text = tmp_path / "text.txt"
    text.write_text("the company said it expects higher sales\nshares fell in new york trading\n")
    assert main(["language-model", "predict", "--run-dir", str(run_dir), "--score", str(text)]) == 0
    scored = json.loads(capsys.readouterr().out.strip())
    assert scored["tokens"] == 15 and scored["perplexity"] == pytest.approx(
        math.exp(-scored["log_probability"] / 15))


def test_a_run_dir_of_the_previous_release_still_loads(trained_run, tmp_path, capsys):
    """The previous release named model.tie_embeddings model.tie_weights and wrote no metadata.json (its config held
    the resolved data.dir): such a run dir evaluates as before."""
    _, run_dir = trained_run
    old = tmp_path / "old-run"
    shutil.copytree(run_dir, old, ignore=shutil.ignore_patterns(".lock", "metrics-*.json"))
    config = (old / "config.yaml").read_text()
    assert "tie_embeddings: true" in config
    (old / "config.yaml").write_text(config.replace("tie_embeddings:", "tie_weights:"))
    (old / "metadata.json").unlink()
    assert main(["language-model", "evaluate", "--run-dir", str(old), "--split", "valid"]) == 0
    captured = capsys.readouterr()
    assert "'model.tie_weights' is read as 'model.tie_embeddings'" in captured.err
    assert main(["language-model", "evaluate", "--run-dir", str(run_dir), "--split", "validation"]) == 0
    metrics = [json.loads(out.strip().splitlines()[-1]) for out in (captured.out, capsys.readouterr().out)]
    for m in metrics:
        m.pop("tokens_per_second")
    assert metrics[0] == metrics[1] and metrics[0]["split"] == "valid"


def keras_network(run_dir):
    run = RunDir(run_dir)
    return inference_network(run.config(TASK), run.load_model()), Vocabulary.from_json(
        run.load_json("vocabulary.json"))


def greedy_by_hand(run_dir, prompt, max_tokens):
    """Greedy generation with a plain Python loop over the Keras network, one token at a time."""
    network, vocabulary = keras_network(run_dir)
    ids, _ = vocabulary.encode(prompt.split())
    states = zero_states(network, 1)
    logits, *states = network([tf.constant([[EOS_ID, *ids]]), *states])
    words = []
    for _ in range(max_tokens):
        scores = logits.numpy()[0, -1]
        scores[0] = -np.inf  # <pad> is never generated
        token = int(np.argmax(scores))
        if token == EOS_ID:
            break
        words.append(vocabulary.words[token])
        logits, *states = network([tf.constant([[token]]), *states])
    return words


def score_by_hand(run_dir, sentence):
    network, vocabulary = keras_network(run_dir)
    ids, _ = vocabulary.encode(sentence.split())
    tokens = np.array([EOS_ID, *ids, EOS_ID], np.int32)
    logits = network([tf.constant(tokens[None, :-1]), *zero_states(network, 1)])[0].numpy()[0]
    return log_softmax(logits.astype(np.float64))[np.arange(len(tokens) - 1), tokens[1:]].sum(), len(tokens) - 1


FRESH_PROCESS = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    signatures = tf.saved_model.load(sys.argv[1]).signatures
    prompts, sentences = json.loads(sys.argv[2]), json.loads(sys.argv[3])
    generated = signatures["serving_default"](prompt=tf.constant(prompts),
                                              max_tokens=tf.constant([12] * len(prompts)),
                                              temperature=tf.zeros([len(prompts)]))
    scored = signatures["score"](text=tf.constant(sentences))
    print(json.dumps({"continuations": [s.decode() for s in generated["continuation"].numpy()],
                      "log_probability": scored["log_probability"].numpy().tolist(),
                      "tokens": scored["tokens"].numpy().tolist()}))
""")


def test_export_answers_like_the_keras_model_in_a_fresh_process(trained_run, tmp_path, capsys):
    from lstm_apps.export import WARMUP_FILE, read_warmup_requests

    _, run_dir = trained_run
    assert main(["language-model", "export", "--run-dir", str(run_dir), "--export-dir", str(tmp_path / "ex")]) == 0
    version = tmp_path / "ex" / "1"
    assert (version / "saved_model.pb").exists() and (version / WARMUP_FILE).exists()
    assert set(read_warmup_requests(version)) == {"serving_default", "score"}
    # prompts of different lengths in one batch (right padding must not change the answer)
    prompts = ["the company said", "stocks", "in new york the dollar"]
    sentences = ["the company said it expects higher sales", "shares fell", "the dollar rose against the yen"]
    result = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(version), json.dumps(prompts),
                             json.dumps(sentences)], capture_output=True, text=True, check=True)
    served = json.loads(result.stdout.strip().splitlines()[-1])
    for prompt, continuation in zip(prompts, served["continuations"]):
        assert continuation.split() == greedy_by_hand(run_dir, prompt, 12), prompt
    for sentence, log_probability, tokens in zip(sentences, served["log_probability"], served["tokens"]):
        expected, count = score_by_hand(run_dir, sentence)
        assert tokens == count and log_probability == pytest.approx(expected, rel=1e-4, abs=1e-3), sentence
    assert main(["language-model", "predict", "--model", str(tmp_path / "ex"), prompts[0],
                 "--temperature", "0", "--max-tokens", "12"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["continuation"] == served["continuations"][0]
    text = tmp_path / "text.txt"  # an export scores a file sentence by sentence (no state across lines)
    text.write_text("the company said it expects higher sales\nshares fell in new york trading\n")
    assert main(["language-model", "predict", "--model", str(tmp_path / "ex"), "--score", str(text)]) == 0
    scored = json.loads(capsys.readouterr().out.strip())
    expected = sum(score_by_hand(run_dir, line)[0] for line in text.read_text().splitlines())
    assert scored["context"] == "sentence" and scored["tokens"] == 15
    assert scored["log_probability"] == pytest.approx(expected, rel=1e-4)
    assert main(["language-model", "predict", "--model", str(tmp_path / "ex"), prompts[0], "--top-k", "3"]) == 2
    assert "--top-k: fixed when the model was exported" in capsys.readouterr().err


@pytest.mark.parametrize("overrides", [["model.units=24", "model.embedding_dim=8"],  # tied through a projection
                                       ["model.units=16", "model.tie_embeddings=false"]])
def test_tied_projected_and_untied_networks_share_weights_with_their_inference_twin(overrides):
    from pipelines.language_model.model import set_output_bias

    cfg = build_config(TASK.presets_dir, "quick", overrides=overrides)
    trained = build_network(cfg, vocab_size=30, batch_size=2, stateful=True)
    log_probs = np.log(np.full(30, 1 / 30))
    set_output_bias(trained, log_probs)
    tokens = np.random.default_rng(2).integers(3, 30, (2, 9)).astype(np.int32)
    stateful_logits = trained(tokens, training=False).numpy()
    network = inference_network(cfg, trained)
    logits = network([tf.constant(tokens), *zero_states(network, 2)])[0].numpy()
    assert logits.shape == (2, 9, 30)
    np.testing.assert_allclose(logits, stateful_logits, atol=1e-5)
    tied = "model.tie_embeddings=false" not in overrides
    assert ("projection" in {layer.name for layer in trained.layers}) == tied
    if tied:  # the output matrix is the embedding matrix: one copy, no (vocab x hidden) output kernel
        assert sum(int(np.prod(w.shape)) == 30 * 8 for w in trained.weights) == 1
