"""Sampling filters and the in-graph sampling loop against direct computations."""
import numpy as np
import tensorflow as tf

from lstm_apps.decoding import NEG_INF, choose_tokens, filter_logits, sample_loop


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
    tokens, lengths = sample_loop(step, first, [tf.zeros([3, 1])], max_tokens=tf.constant([10, 10, 2]),
                                  temperature=tf.zeros([3]), end_id=0, seed=0)
    assert lengths.numpy().tolist() == [3, 4, 2]  # 1 2 3 <end>; 4 1 2 3 <end>; 4 1 (max 2)
    assert tokens.numpy()[0, :3].tolist() == [1, 2, 3] and tokens.numpy()[1, :4].tolist() == [4, 1, 2, 3]
    assert tokens.numpy()[2, :2].tolist() == [4, 1]
