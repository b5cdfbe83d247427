"""Decoding with core TF ops only (no py_function, no tensorflow-addons), so it runs inside exported SavedModels.

Every loop takes a `step_fn(tokens [batch, 1], states) -> (logits [batch, vocab], states)` that steps the same
weights the training model uses, so Keras-side prediction and the served graph decode identically.
"""
import tensorflow as tf

NEG_INF = -1e9


def filter_logits(logits, top_k=0, top_p=1.0):
    """Keep the `top_k` highest logits (0 = all) and the smallest set whose probability reaches `top_p` (nucleus
    sampling, Holtzman et al. 2020; the most likely token is always kept); the rest become NEG_INF."""
    if top_k > 0:
        k = min(int(top_k), int(logits.shape[-1]))
        kth = tf.math.top_k(logits, k=k).values[:, -1:]
        logits = tf.where(logits < kth, NEG_INF, logits)
    if 0.0 < top_p < 1.0:
        ordered = tf.sort(logits, axis=-1, direction="DESCENDING")
        before = tf.cumsum(tf.nn.softmax(ordered, axis=-1), axis=-1, exclusive=True)
        threshold = tf.reduce_min(tf.where(before < top_p, ordered, tf.reduce_max(ordered, -1, keepdims=True)),
                                  axis=-1, keepdims=True)
        logits = tf.where(logits < threshold, NEG_INF, logits)
    return logits


def choose_tokens(logits, temperature, seed, top_k=0, top_p=1.0):
    """Next token per row: argmax where temperature <= 0, else a sample from softmax(logits / temperature) after
    `filter_logits`. `seed` is a shape-[2] int tensor (stateless sampling: the same seed, the same tokens)."""
    greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)
    scaled = logits / tf.maximum(temperature, 1e-6)[:, None]
    sampled = tf.random.stateless_categorical(filter_logits(scaled, top_k, top_p), 1, seed=seed,
                                              dtype=tf.int32)[:, 0]
    return tf.where(temperature <= 0.0, greedy, sampled)


def sample_loop(step_fn, logits, states, max_tokens, temperature, end_id, seed, top_k=0, top_p=1.0,
                banned_ids=()):
    """Generate up to `max_tokens[row]` tokens per row, stopping a row at `end_id` (not included).

    logits [batch, vocab]: scores of the first token to generate; states: what `step_fn` carries;
    max_tokens int32[batch]; temperature float32[batch]; seed: int (step i samples with seed [seed, i]).
    Returns (tokens int32[batch, steps], lengths int32[batch]); tokens past a row's length are `end_id`.
    """
    max_tokens = tf.cast(max_tokens, tf.int32)
    temperature = tf.cast(temperature, logits.dtype)
    batch = tf.shape(logits)[0]
    steps = tf.reduce_max(tf.concat([max_tokens, [0]], axis=0))
    banned = tf.reduce_sum(tf.one_hot(list(banned_ids), tf.shape(logits)[-1], dtype=logits.dtype), axis=0) \
        if banned_ids else None

    def body(step, logits, states, done, lengths, written):
        if banned is not None:
            logits = logits + banned * NEG_INF
        tokens = choose_tokens(logits, temperature, tf.stack([tf.cast(seed, tf.int32), step]), top_k, top_p)
        done = done | (tokens == end_id) | (step >= max_tokens)
        tokens = tf.where(done, end_id, tokens)
        lengths = lengths + tf.cast(~done, tf.int32)
        written = written.write(step, tokens)
        logits, states = step_fn(tokens[:, None], states)
        return step + 1, logits, states, done, lengths, written

    def not_finished(step, logits, states, done, lengths, written):
        return (step < steps) & ~tf.reduce_all(done)

    initial = (tf.constant(0), logits, states, tf.zeros([batch], tf.bool), tf.zeros([batch], tf.int32),
               tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[None]))
    _, _, _, _, lengths, written = tf.while_loop(not_finished, body, initial)
    tokens = tf.cond(written.size() > 0, lambda: tf.transpose(written.stack()),
                     lambda: tf.zeros([batch, 0], tf.int32))
    return tokens, lengths
