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


def banned_penalty(banned_ids, vocab, dtype=tf.float32):
    """NEG_INF at `banned_ids`, 0 elsewhere ([vocab]; None when nothing is banned): added to scores so those ids
    are never chosen."""
    if not banned_ids:
        return None
    return NEG_INF * tf.reduce_sum(tf.one_hot(list(banned_ids), vocab, dtype=dtype), axis=0)


def sample_loop(step_fn, logits, states, max_tokens, temperature, end_id, seed, top_k=0, top_p=1.0,
                banned_ids=()):
    """Generate up to `max_tokens[row]` tokens per row, stopping a row at `end_id` (not included).

    logits [batch, vocab]: scores of the first token to generate; states: what `step_fn` carries;
    max_tokens int32[batch]; temperature float32[batch]; seed: int (step i samples with seed [seed, i]).
    Returns (tokens int32[batch, steps], lengths int32[batch], log_probs float32[batch]); tokens past a row's
    length are `end_id`; log_probs sums log p of the chosen tokens under the model's own distribution (unscaled,
    before banning; the end token included when the row ended with it), as `beam_search` scores.
    """
    max_tokens = tf.cast(max_tokens, tf.int32)
    temperature = tf.cast(temperature, logits.dtype)
    batch = tf.shape(logits)[0]
    steps = tf.reduce_max(tf.concat([max_tokens, [0]], axis=0))
    banned = banned_penalty(banned_ids, tf.shape(logits)[-1], logits.dtype)

    def body(step, logits, states, done, lengths, log_probs, written):
        model_log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)  # before banning: the model's
        if banned is not None:
            logits = logits + banned
        tokens = choose_tokens(logits, temperature, tf.stack([tf.cast(seed, tf.int32), step]), top_k, top_p)
        counted = ~done & (step < max_tokens)
        chosen = tf.gather(model_log_probs, tokens, batch_dims=1)
        log_probs = log_probs + tf.where(counted, chosen, 0.0)
        done = done | (tokens == end_id) | (step >= max_tokens)
        tokens = tf.where(done, end_id, tokens)
        lengths = lengths + tf.cast(~done, tf.int32)
        written = written.write(step, tokens)
        logits, states = step_fn(tokens[:, None], states)
        return step + 1, logits, states, done, lengths, log_probs, written

    def not_finished(step, logits, states, done, lengths, log_probs, written):
        return (step < steps) & ~tf.reduce_all(done)

    initial = (tf.constant(0), logits, states, tf.zeros([batch], tf.bool), tf.zeros([batch], tf.int32),
               tf.zeros([batch], tf.float32),
               tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[None]))
    _, _, _, _, lengths, log_probs, written = tf.while_loop(not_finished, body, initial)
    tokens = tf.cond(written.size() > 0, lambda: tf.transpose(written.stack()),
                     lambda: tf.zeros([batch, 0], tf.int32))
    return tokens, lengths, log_probs


def tile_beams(tensor, beam_size):
    """[batch, ...] -> [batch * beam_size, ...], each row repeated beam_size times in a row (the layout
    `beam_search` expects for the states and anything `step_fn` closes over, e.g. an encoder's memory)."""
    return tf.repeat(tensor, beam_size, axis=0)


def gnmt_length_penalty(lengths, alpha):
    """((5 + length) / 6) ** alpha (Wu et al. 2016); scores are log-probability / penalty, alpha = 0 gives plain
    log-probabilities."""
    return tf.pow((5.0 + tf.cast(lengths, tf.float32)) / 6.0, alpha)


def greedy_search(step_fn, states, batch_size, start_id, end_id, max_lengths, banned_ids=()):
    """Argmax decoding from `start_id` (`sample_loop` at temperature 0): each row stops at its first end token or
    after max_lengths[row] tokens. Returns (tokens int32[batch, steps], lengths int32[batch],
    log_probs float32[batch]: of the tokens, and of the end token when the row ended with it)."""
    logits, states = step_fn(tf.fill([batch_size, 1], tf.cast(start_id, tf.int32)), states)
    return sample_loop(step_fn, tf.cast(logits, tf.float32), states, max_lengths, tf.zeros([batch_size]), end_id,
                       seed=0, banned_ids=banned_ids)


def beam_search(step_fn, states, batch_size, beam_size, start_id, end_id, max_lengths, alpha=0.6, banned_ids=()):
    """Batched beam search in core TF ops (one `tf.while_loop`; exportable, no py_function).

    step_fn(tokens int32[batch * beam, 1], states) -> (logits [batch * beam, vocab], states): one decoder step;
    states: a nest of tensors with leading dimension batch * beam (see `tile_beams`), reordered as beams are;
    max_lengths int32[batch]: the most tokens a row may produce before its end token (e.g. relative to the
    source length; at that length only the end token may follow); alpha: the GNMT length penalty; banned_ids:
    ids never produced (padding, start). Hypotheses that end (or reach their maximum length) move to a
    finished set; the search stops when no live hypothesis can beat the finished ones (tensor2tensor's rule).

    Returns (tokens int32[batch, steps], lengths int32[batch] without the end token, scores float32[batch] =
    log-probability of the tokens and the end token / length penalty); tokens past a row's length are `end_id`.
    """
    beam, batch = beam_size, batch_size
    max_lengths = tf.cast(max_lengths, tf.int32)
    max_steps = tf.reduce_max(max_lengths) + 1  # + the end token
    inf = tf.constant(-NEG_INF, tf.float32)

    def merge_beams(t):
        return tf.reshape(t, tf.concat([[batch * beam], tf.shape(t)[2:]], 0))

    def split_beams(t):
        return tf.reshape(t, tf.concat([[batch, beam], tf.shape(t)[1:]], 0))

    def gather_beams(t, indices):  # t [batch, n, ...], indices [batch, k] -> [batch, k, ...]
        return tf.gather(t, indices, batch_dims=1)

    alive_seq = tf.fill([batch, beam, 1], tf.cast(start_id, tf.int32))
    alive_log_probs = tf.tile(tf.concat([[0.0], tf.fill([beam - 1], -inf)], 0)[None], [batch, 1])
    finished_seq = tf.zeros_like(alive_seq)
    finished_scores = tf.fill([batch, beam], -inf)
    finished_lengths = tf.zeros([batch, beam], tf.int32)

    def body(step, alive_seq, alive_log_probs, states, finished_seq, finished_scores, finished_lengths):
        logits, new_states = step_fn(merge_beams(alive_seq[:, :, -1:]), states)
        vocab = tf.shape(logits)[-1]
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
        if banned_ids:
            log_probs = log_probs + banned_penalty(banned_ids, vocab)
        # a row at its maximum length may only end: every other token is ruled out
        end_only = tf.one_hot(end_id, vocab, on_value=0.0, off_value=NEG_INF)
        log_probs = tf.where((step >= max_lengths)[:, None, None], split_beams(log_probs) + end_only,
                             split_beams(log_probs))
        candidates = log_probs + alive_log_probs[:, :, None]
        top_log_probs, top_indices = tf.math.top_k(tf.reshape(candidates, [batch, -1]), k=2 * beam)
        parents, tokens = top_indices // vocab, top_indices % vocab
        top_seq = tf.concat([gather_beams(alive_seq, parents), tokens[:, :, None]], axis=2)
        ended = tokens == end_id
        # live: the best `beam` candidates that have not ended
        live_scores, live = tf.math.top_k(tf.where(ended, -inf, top_log_probs), k=beam)
        alive_seq = gather_beams(top_seq, live)
        alive_log_probs = live_scores
        flat_parents = tf.reshape(gather_beams(parents, live) + tf.range(batch)[:, None] * beam, [-1])
        states = tf.nest.map_structure(lambda s: tf.gather(s, flat_parents), new_states)
        # finished: the best `beam` among the old finished ones and the candidates that ended now (`step` tokens
        # and the end token)
        new_scores = tf.where(ended, top_log_probs / gnmt_length_penalty(step + 1, alpha), -inf)
        padded_finished = tf.pad(finished_seq, [[0, 0], [0, 0], [0, 1]], constant_values=end_id)
        pool_seq = tf.concat([padded_finished, top_seq], axis=1)
        pool_scores = tf.concat([finished_scores, new_scores], axis=1)
        pool_lengths = tf.concat([finished_lengths, tf.fill(tf.shape(tokens), step)], axis=1)
        finished_scores, best = tf.math.top_k(pool_scores, k=beam)
        finished_seq = gather_beams(pool_seq, best)
        finished_lengths = gather_beams(pool_lengths, best)
        return step + 1, alive_seq, alive_log_probs, states, finished_seq, finished_scores, finished_lengths

    def not_done(step, alive_seq, alive_log_probs, states, finished_seq, finished_scores, finished_lengths):
        # the best a live hypothesis could still score: its log-probability only falls, the penalty only grows
        best_possible = alive_log_probs[:, 0] / gnmt_length_penalty(max_lengths + 1, alpha)
        row_open = (step < max_lengths + 1) & (best_possible > finished_scores[:, 0])
        return (step < max_steps) & tf.reduce_any(row_open)

    shape = lambda t: tf.TensorShape([None] * t.shape.rank)  # noqa: E731
    _, _, _, _, finished_seq, finished_scores, finished_lengths = tf.while_loop(
        not_done, body,
        (tf.constant(0), alive_seq, alive_log_probs, states, finished_seq, finished_scores, finished_lengths),
        shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, None, None]), tf.TensorShape([None, None]),
                          tf.nest.map_structure(shape, states), tf.TensorShape([None, None, None]),
                          tf.TensorShape([None, None]), tf.TensorShape([None, None])))
    lengths = finished_lengths[:, 0]
    tokens = finished_seq[:, 0, 1:]
    tokens = tf.where(tf.sequence_mask(lengths, tf.shape(tokens)[1]), tokens, end_id)
    return tokens, lengths, finished_scores[:, 0]


def keep_better(first, second):
    """Per row, the better-scoring of two decodings, each (tokens int32[batch, steps], lengths int32[batch],
    scores float32[batch]) (e.g. beam search and greedy: beam search can prune the greedy prefix and end below it,
    so a caller that promises "never worse than greedy" keeps the greedy row where it scores higher)."""
    (tokens_a, lengths_a, scores_a), (tokens_b, lengths_b, scores_b) = first, second
    width = tf.maximum(tf.shape(tokens_a)[1], tf.shape(tokens_b)[1])
    pad = lambda t: tf.pad(t, [[0, 0], [0, width - tf.shape(t)[1]]])  # noqa: E731 (masked by lengths anyway)
    take_b = scores_b > scores_a
    return (tf.where(take_b[:, None], pad(tokens_b), pad(tokens_a)), tf.where(take_b, lengths_b, lengths_a),
            tf.where(take_b, scores_b, scores_a))


class GraphPerBeamSize:
    """`decode(inputs, beam_size)` as one tf.function per beam size, traced on first use of each size (the beam
    size shapes the graph, so it is a Python value, not a tensor)."""

    def __init__(self, decode, input_signature=None):
        self.decode, self.input_signature = decode, input_signature
        self.graphs = {}

    def __call__(self, beam_size):
        if beam_size not in self.graphs:
            self.graphs[beam_size] = tf.function(lambda inputs: self.decode(inputs, beam_size),
                                                 input_signature=self.input_signature)
        return self.graphs[beam_size]

