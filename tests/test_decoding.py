"""Sampling filters, the in-graph sampling loop, greedy and beam search against direct computations."""
import itertools

import numpy as np
import pytest
import tensorflow as tf

from lstm_apps.decoding import (NEG_INF, beam_search, choose_tokens, filter_logits, greedy_search, keep_better,
                                sample_loop)


def test_top_k_keeps_the_k_largest():
    logits = tf.constant([[1.0, 5.0, 3.0, 4.0, 2.0]])
    kept = filter_logits(logits, top_k=2).numpy()[0] > NEG_INF / 2
    assert kept.tolist() == [False, True, False, True, False]


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = np.array([0.05, 0.5, 0.3, 0.15], np.float32)
    logits = tf.constant(np.log(probs)[None])
    for top_p, expected in ((0.5, [1]), (0.6, [1, 2]), (0.8, [1, 2]), (0.81, [1, 2, 3]), (0.01, [1])):
        kept = np.flatnonzero(filter_logits(logits, top_p=top_p).numpy()[0] > NEG_INF / 2).tolist()
        assert kept == expected, (top_p, kept)


def test_temperature_zero_is_argmax_and_a_seed_reproduces_samples():
    logits = tf.random.stateless_normal([64, 50], seed=[1, 2])
    greedy = choose_tokens(logits, tf.zeros([64]), seed=tf.constant([7, 0]))
    assert greedy.numpy().tolist() == np.argmax(logits.numpy(), -1).tolist()
    first = choose_tokens(logits, tf.ones([64]), seed=tf.constant([7, 0])).numpy()
    again = choose_tokens(logits, tf.ones([64]), seed=tf.constant([7, 0])).numpy()
    other = choose_tokens(logits, tf.ones([64]), seed=tf.constant([8, 0])).numpy()
    assert (first == again).all() and (first != other).any()


def test_sampled_frequencies_follow_the_distribution():
    probs = np.array([0.6, 0.3, 0.1], np.float32)
    logits = tf.constant(np.tile(np.log(probs), (20000, 1)))
    tokens = choose_tokens(logits, tf.ones([20000]), seed=tf.constant([3, 4])).numpy()
    np.testing.assert_allclose(np.bincount(tokens, minlength=3) / 20000, probs, atol=0.015)


def test_sample_loop_follows_the_steps_and_stops_at_end_or_max_tokens():
    # a deterministic "model": after token t the next token is table[t]; 0 is the end token
    table = tf.constant([0, 2, 3, 0, 1])
    vocab = 5

    def step(tokens, states):
        return tf.one_hot(tf.gather(table, tokens[:, 0]), vocab) * 10.0, states

    first = tf.one_hot([1, 4, 4], vocab) * 10.0  # rows start at tokens 1, 4, 4
    tokens, lengths, _ = sample_loop(step, first, [tf.zeros([3, 1])], max_tokens=tf.constant([10, 10, 2]),
                                  temperature=tf.zeros([3]), end_id=0, seed=0)
    assert lengths.numpy().tolist() == [3, 4, 2]  # 1 2 3 <end>; 4 1 2 3 <end>; 4 1 (max 2)
    assert tokens.numpy()[0, :3].tolist() == [1, 2, 3] and tokens.numpy()[1, :4].tolist() == [4, 1, 2, 3]
    assert tokens.numpy()[2, :2].tolist() == [4, 1]


# ------------------------------------------------------------------------------------------------ beam search
# A second-order toy "decoder": the next-token distribution depends on the last two tokens (the state carries the
# one before last), so a beam search that reorders its states wrongly scores the wrong sequences.
VOCAB, START, END = 5, 1, 0


def toy_table(seed):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(VOCAB, VOCAB, VOCAB)).astype(np.float32) * 2.0  # [before last, last, next]


def toy_step(table):
    table = tf.constant(table)

    def step(tokens, states):
        last = tokens[:, 0]
        logits = tf.gather_nd(table, tf.stack([states[0], last], axis=1))
        return logits, [last]
    return step


def toy_log_probs(table, before, last):
    logits = table[before, last].astype(np.float64)
    return logits - np.log(np.exp(logits).sum())


def brute_force_best(table, max_length, alpha, banned=()):
    """The best (tokens, score) over every sequence of at most max_length tokens followed by the end token."""
    best = (None, -np.inf)
    for length in range(max_length + 1):
        for tokens in itertools.product([t for t in range(VOCAB) if t not in (END, *banned)], repeat=length):
            before, last, total = START, START, 0.0
            for token in (*tokens, END):
                total += toy_log_probs(table, before, last)[token]
                before, last = last, token
            score = total / ((5.0 + length + 1) / 6.0) ** alpha
            if score > best[1]:
                best = (list(tokens), score)
    return best


def run_beam(table, beam, max_lengths, alpha, banned=()):
    batch = len(max_lengths)
    states = [tf.fill([batch * beam], START)]
    return [t.numpy() for t in beam_search(toy_step(table), states, batch, beam, START, END,
                                           tf.constant(max_lengths), alpha=alpha, banned_ids=banned)]


@pytest.mark.parametrize("seed", range(4))
def test_wide_beam_finds_the_exhaustive_optimum(seed):
    table = toy_table(seed)
    tokens, lengths, scores = run_beam(table, beam=VOCAB ** 2, max_lengths=[4], alpha=0.6, banned=(START,))
    expected_tokens, expected_score = brute_force_best(table, 4, 0.6, banned=(START,))
    assert tokens[0, :lengths[0]].tolist() == expected_tokens
    assert scores[0] == pytest.approx(expected_score, abs=1e-4)


def test_greedy_is_the_argmax_path_and_beam_never_scores_lower_here():
    stopped_early = 0
    for seed in range(8):
        table = toy_table(seed)
        tokens, lengths, scores = [t.numpy() for t in greedy_search(
            toy_step(table), [tf.fill([1], START)], 1, START, END, tf.constant([6]))]
        before, last, expected, total = START, START, [], 0.0
        while len(expected) < 6:  # at the limit the row stops without an end token (nothing more is counted)
            log_probs = toy_log_probs(table, before, last)
            token = int(np.argmax(log_probs))
            total += log_probs[token]
            if token == END:
                break
            expected.append(token)
            before, last = last, token
        assert tokens[0, :lengths[0]].tolist() == expected and scores[0] == pytest.approx(total, abs=1e-4)
        if lengths[0] < 6:  # ended with its own end token: the same quantity beam search maximises
            stopped_early += 1
            beam_scores = run_beam(table, beam=4, max_lengths=[6], alpha=0.0)[2]
            assert beam_scores[0] >= scores[0] - 1e-5
    assert stopped_early >= 3


def test_rows_keep_their_own_maximum_length_and_banned_ids_never_appear():
    table = toy_table(0)
    table[:, :, END] = -20.0  # the model never wants to stop: every row runs to its limit
    tokens, lengths, _ = run_beam(table, beam=3, max_lengths=[2, 5, 0], alpha=0.6, banned=(START,))
    assert lengths.tolist() == [2, 5, 0]
    for row, length in zip(tokens, lengths):
        assert START not in row[:length].tolist() and set(row[length:].tolist()) <= {END}
    batched = run_beam(table, beam=3, max_lengths=[5], alpha=0.6, banned=(START,))[0]
    assert tokens[1, :5].tolist() == batched[0, :5].tolist()  # a row decodes the same alone or in a batch


def test_keep_better_takes_each_row_from_the_higher_score():
    first = (tf.constant([[5, 6, 7]]), tf.constant([3]), tf.constant([-2.0]))
    first = tuple(tf.concat([t, t], 0) for t in first)
    second = (tf.constant([[8], [9]]), tf.constant([1, 1]), tf.constant([-1.0, -3.0]))
    tokens, lengths, scores = [t.numpy() for t in keep_better(first, second)]
    assert tokens[0, :1].tolist() == [8] and tokens[1].tolist() == [5, 6, 7]
    assert lengths.tolist() == [1, 3] and scores.tolist() == [-1.0, -2.0]
