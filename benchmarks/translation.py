"""Translation throughput: training words/s of the task's network (quick and full preset sizes), decoding
sentences/s (greedy and beam 5), and input-pipeline words/s, on Multi30k en->de.

A "word" is a whitespace-separated word of the raw text, source and target counted together (the subword count
depends on the SentencePiece vocabulary; words do not, so presets compare).

* training: one optimizer step (forward, label-smoothed masked cross-entropy, backward, Adam with global-norm
  clipping: `lstm_apps.runner.compiled_model`, the model `train` fits) of the task's network on real batches from
  the task's own pipeline
  (`encode_pairs` + `batches`: bucketed, right-padded, about `train.batch_tokens` tokens each, shuffled). The
  batches are made first, so only the step is timed (`train_on_batch`: the compiled train step `fit` runs). Warm-up: one
  step per padded length (bucket) that occurs, then --warmup more; then --steps timed steps (--full-steps for the
  full preset's sizes; each preset's SentencePiece models are trained on its training pairs with its vocabulary
  sizes by the task's `prepare_run`, as `train` trains them). words/s = the words of the timed batches / their total time.
* decoding: `TextTranslator.translate_graph(beam)` (the inference module's graph that `evaluate`, `predict` and
  the export run: subwords, encoder, greedy or beam search, detokenization) on one batch of the first --sentences
  sentences of test_2016_flickr; one untimed call (tracing), then --decode-calls timed calls (median). The model is
  `--run-dir`'s trained one, else an untrained quick-preset network (said in the output: an untrained model's
  translations have other lengths than a trained one's, and decoding time grows with them).
* input pipeline: `encode_pairs` (SentencePiece in the graph over every training pair of the quick preset) and
  one full pass over `batches(...)` with nothing consuming it.

Run:
    python benchmarks/translation.py                                   # ~3 min on 2 cores
    python benchmarks/translation.py --steps 50 --full-steps 10        # shorter
    python benchmarks/translation.py --run-dir runs/mt-quick           # decode speed of a trained model
"""
import argparse
import copy
import os
import statistics
import tempfile
import time
from pathlib import Path

import _common

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=str(_common.default_data_dir("multi30k") / "raw"),
                   help="Multi30k raw folder ({split}.{en,de}.gz)")
    p.add_argument("--run-dir", help="a finished translation run: decode with its model (default: untrained)")
    p.add_argument("--steps", type=int, default=200, help="timed training steps, quick preset (default 200)")
    p.add_argument("--full-steps", type=int, default=20,
                   help="timed training steps at the full preset's sizes (default 20; 0 skips them)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps after one per bucket shape (default 2)")
    p.add_argument("--sentences", type=int, default=64, help="test sentences in the decoding batch (default 64)")
    p.add_argument("--decode-calls", type=int, default=3, help="timed calls per beam size (default 3)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="TF intra- and inter-op threads")
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args(argv)


def words(texts):
    return sum(len(text.split()) for text in texts)


_SETUPS = {}


def preset_setup(preset, data_dir, work_dir):
    """(cfg, training data, training pairs, {"source", "target"} tokenizers) of a preset, its SentencePiece models
    trained on its training pairs by the task's `prepare_run`, as `train` trains them (once per preset)."""
    if preset not in _SETUPS:
        _SETUPS[preset] = _preset_setup(preset, data_dir, work_dir)
    cfg, *rest = _SETUPS[preset]
    return copy.deepcopy(cfg), *rest


def _preset_setup(preset, data_dir, work_dir):
    from lstm_apps.config import build_config
    from pipelines.translation.task import TASK

    cfg = build_config(TASK.presets_dir, preset)
    data = TASK.read_data(cfg, Path(data_dir).resolve(), ("train",))
    subword_dir = Path(work_dir) / preset
    subword_dir.mkdir(parents=True, exist_ok=True)
    return cfg, data, data.pairs["train"], TASK.prepare_run(cfg, data, subword_dir)


def batch_words(batch, source_tokenizer, target_tokenizer):
    """Whitespace words of the (detokenized) sentences in one ((source, target_in), target_out) batch."""
    import tensorflow as tf
    from lstm_apps.inputs.subwords import PAD_ID

    (source, _), target_out = batch
    count = 0
    for ids, tokenizer in ((source, source_tokenizer), (target_out, target_tokenizer)):
        ragged = tf.RaggedTensor.from_tensor(ids, padding=PAD_ID)[:, :-1]  # without padding and the end token
        count += words(t.decode("utf-8") for t in tokenizer.detokenize(ragged).numpy())
    return count


def time_training(preset, args, work_dir):
    """Median ms/step, words/s, pairs/s of `--steps` (or `--full-steps`) training steps at a preset's sizes."""
    import keras
    import tensorflow as tf
    from lstm_apps import runner
    from pipelines.translation.pipeline import batches, encode_pairs
    from pipelines.translation.task import TASK

    steps = args.steps if preset == "quick" else args.full_steps
    cfg, data, pairs, tokenizers = preset_setup(preset, args.data_dir, work_dir)
    source_tokenizer, target_tokenizer = tokenizers["source"], tokenizers["target"]
    data_cfg, train_cfg = cfg["data"], cfg["train"]
    source, target, _ = encode_pairs(pairs, source_tokenizer, target_tokenizer, data_cfg["max_length"])
    epoch = list(batches(source, target, train_cfg, data_cfg["max_length"], shuffle=True))
    shapes = {}
    for batch in epoch:
        shapes.setdefault(tuple(batch[1].shape[1:]), batch)
    timed = [epoch[i % len(epoch)] for i in range(steps)]
    timed_words = [batch_words(batch, source_tokenizer, target_tokenizer) for batch in timed]

    keras.utils.set_random_seed(args.seed)
    model = runner.compiled_model(TASK, cfg, data, tokenizers)
    start = time.perf_counter()
    for x, y in shapes.values():
        model.train_on_batch(x, y)
    for i in range(args.warmup):
        model.train_on_batch(*epoch[-1 - i % len(epoch)])
    warmup_s = time.perf_counter() - start
    times = []
    for x, y in timed:
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    total = sum(times)
    m = cfg["model"]
    return {"preset": preset, "steps": steps, "batches_per_epoch": len(epoch), "bucket_shapes": len(shapes),
            "warmup_s": warmup_s, "ms_per_step": statistics.median(times) * 1000,
            "words_per_s": sum(timed_words) / total,
            "pairs_per_s": sum(int(y.shape[0]) for _, y in timed) / total,
            "params": int(model.count_params()),
            "sizes": f"emb {m['embedding_dim']}, {m['layers']} x BiLSTM {m['units']} -> LSTM {2 * m['units']}, "
                     f"vocab {source_tokenizer.vocab_size}/{target_tokenizer.vocab_size}, "
                     f"{train_cfg['batch_tokens']} tokens/batch, {len(pairs)} pairs",
            "tf_version": f"tensorflow {tf.__version__} / keras {keras.__version__}"}


def time_pipeline(args, work_dir):
    """encode_pairs words/s and one pass over batches(...) words/s, quick preset."""
    from pipelines.translation.pipeline import batches, encode_pairs

    cfg, _, pairs, tokenizers = preset_setup("quick", args.data_dir, work_dir)
    source_tokenizer, target_tokenizer = tokenizers["source"], tokenizers["target"]
    max_length = cfg["data"]["max_length"]
    all_words = words(s for s, _ in pairs) + words(t for _, t in pairs)
    start = time.perf_counter()
    source, target, _ = encode_pairs(pairs, source_tokenizer, target_tokenizer, max_length)
    encode_s = time.perf_counter() - start
    kept = [p for p, s, t in zip(pairs, source_tokenizer.tokenize([p[0] for p in pairs]).row_lengths().numpy(),
                                 target_tokenizer.tokenize([p[1] for p in pairs]).row_lengths().numpy())
            if s + 1 <= max_length and t + 1 <= max_length]
    kept_words = words(s for s, _ in kept) + words(t for _, t in kept)
    ds = batches(source, target, cfg["train"], max_length, shuffle=True)
    start = time.perf_counter()
    count = sum(1 for _ in ds)
    batches_s = time.perf_counter() - start
    return {"encode_words_per_s": all_words / encode_s, "encode_s": encode_s, "pairs": len(pairs),
            "batches_words_per_s": kept_words / batches_s, "batches_s": batches_s, "batches": count}


def time_decoding(args, work_dir):
    """sentences/s of greedy and beam 5 on one batch of test sentences."""
    import keras
    import numpy as np
    import tensorflow as tf
    from lstm_apps.run_dir import RunDir
    from pipelines.translation.inference import TextTranslator
    from pipelines.translation.task import TASK

    if args.run_dir:
        run = RunDir(args.run_dir)
        cfg = run.config(TASK)
        model = TASK.inference(cfg, run, {})
        which = f"trained model of {args.run_dir}"
    else:
        cfg, data, _, tokenizers = preset_setup("quick", args.data_dir, work_dir)
        keras.utils.set_random_seed(args.seed)
        network = TASK.build_model(cfg, data, tokenizers)
        model = TextTranslator(network, tokenizers["source"], tokenizers["target"], cfg["decode"])
        which = "UNTRAINED quick-preset network (no --run-dir)"
    test = TASK.read_data(cfg, Path(args.data_dir).resolve(), ("test_2016_flickr",)).pairs["test_2016_flickr"]
    test = test[: args.sentences]
    sentences = tf.constant([s for s, _ in test])
    source_words = words(s for s, _ in test)
    rows = []
    for beam in (1, 5):
        graph = model.translate_graph(beam)
        start = time.perf_counter()
        outputs = graph(sentences)
        first_s = time.perf_counter() - start
        times = []
        for _ in range(args.decode_calls):
            start = time.perf_counter()
            outputs = graph(sentences)
            times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        rows.append({"beam": beam, "sentences": len(test), "seconds": seconds, "first_call_s": first_s,
                     "sentences_per_s": len(test) / seconds, "source_words_per_s": source_words / seconds,
                     "mean_output_tokens": float(np.mean(outputs["lengths"].numpy())),
                     "output_steps": int(outputs["tokens"].shape[1]), "model": which})
    return rows


def main(argv=None):
    args = parse_args(argv)
    _common.require_dir(args.data_dir, "--data-dir")
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    machine = _common.machine_info(threads=args.threads)
    _common.print_machine(machine)
    rows, notes = [], []
    with tempfile.TemporaryDirectory(prefix="translation-bench-") as work_dir:
        for preset in ("quick", "full"):
            if (args.steps if preset == "quick" else args.full_steps) <= 0:
                continue
            print(f"training steps, {preset} preset ...", flush=True)
            r = time_training(preset, args, work_dir)
            rows.append({"measure": f"train, {preset} preset ({r['steps']} steps)", "words_per_s": r["words_per_s"],
                         "sentences_per_s": r["pairs_per_s"], "ms": r["ms_per_step"],
                         "detail": f"{r['params']:,} params; {r['sizes']}; warm-up {r['warmup_s']:.0f} s "
                                   f"({r['bucket_shapes']} bucket shapes)", "version": r["tf_version"]})
        print("decoding ...", flush=True)
        decoded = time_decoding(args, work_dir)
        for r in decoded:
            rows.append({"measure": "decode, " + ("greedy" if r["beam"] == 1 else f"beam {r['beam']}") +
                                    f" (batch {r['sentences']})",
                         "words_per_s": r["source_words_per_s"], "sentences_per_s": r["sentences_per_s"],
                         "ms": r["seconds"] * 1000,
                         "detail": f"{r['mean_output_tokens']:.1f} output tokens/sentence, {r['output_steps']} steps; "
                                   f"first call (tracing) {r['first_call_s']:.1f} s", "model": r["model"]})
        notes.append(f"decoding model: {decoded[0]['model']}" + (
            "; its translations do not look like a trained model's (length, end token), so treat decode speed as "
            "indicative; pass --run-dir for a trained one" if not args.run_dir else ""))
        print("input pipeline ...", flush=True)
        p = time_pipeline(args, work_dir)
        rows.append({"measure": f"encode_pairs (SentencePiece in graph, {p['pairs']} pairs)",
                     "words_per_s": p["encode_words_per_s"], "ms": p["encode_s"] * 1000, "detail": "one call"})
        rows.append({"measure": "batches(...) one pass", "words_per_s": p["batches_words_per_s"],
                     "ms": p["batches_s"] * 1000, "detail": f"{p['batches']} batches"})
    machine["load_avg_after"] = _common.load_average()
    notes += ["words = whitespace words of source + target (decode: source words only); sentences/s = sentence "
              "pairs/s for training. ms = median ms per step / per decoding call / the whole pass.",
              "a decoding batch runs until its last row is done (the 'steps' in its detail), so decoding speed "
              "follows the longest translation in the batch, not the mean length.",
              _common.NOISE_NOTE]
    _common.report("translation", "Translation (Multi30k en->de): training, decoding and input-pipeline throughput "
                   "(higher is better)", rows,
                   [("measure", "measure", None), ("words_per_s", "words/s", ",.0f"),
                    ("sentences_per_s", "sentences/s", ",.1f"), ("ms", "ms", ",.0f"), ("detail", "detail", None)],
                   machine, vars(args), notes=notes)


if __name__ == "__main__":
    main()
