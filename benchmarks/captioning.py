"""Captioning throughput: video decoding frames/s, frame-feature extraction frames/s, training captions/s of both
captioners (S2VT and SA-LSTM) at the quick and full preset sizes, and captioning clips/s greedy vs beam search.

What it measures (every model is untrained: random initialisation, weights `none`; nothing is downloaded):

1. decode: `lstm_apps.inputs.video.read_frames(path, num_frames, size=...)` over every clip, --decode-passes
   passes after one untimed read (median pass):
     - the generated clips (`pipelines.captioning.synthetic.generate`: H.264 .mp4, 16 frames of 64x64, 80 clips
       per --clips-per-combination), the quick preset's 8 frames at 64x64;
     - the real MSVD sample clips (--msvd-clips, .avi, H.264, 91-421 frames of 320x240 up to 1280x720), 80
       frames resized to 224x224 (the full preset's frames at VGG16's size); plus a decode-only pass (PyAV
       decodes every frame, no RGB conversion or resizing) to show where the time goes: `read_frames` converts
       and resizes every frame of the clip before it samples the `num_frames` it keeps.
   frames/s counts the frames `read_frames` returns (num_frames per clip); the clip's own frame count is in the
   detail column.
2. features: `pipelines.captioning.features.build_backbone(name, "none")` for vgg16 (fc2, 4096) and
   mobilenet_v2 (avg pool, 1280) at 224x224, and the quick preset's trainable conv frame encoder
   (`pipelines.captioning.model.build_frame_encoder`, 64x64 -> 128), on random uint8 frame batches with
   `predict_on_batch` (the compiled predict step); one untimed call, then --feature-calls timed calls (median).
3. train: `lstm_apps.runner.compiled_model(TASK, cfg, ...)` for s2vt and sa-lstm (the task's `build_model`,
   compiled as `train` compiles it: adam + global-norm clipping, MaskedCrossEntropy, Perplexity), stepped with
   `train_on_batch` on random data: the quick preset (uint8 frames 8x64x64x3 through the conv encoder, batch 32,
   the generated clips' vocabulary) and the full preset (VGG16-like features 80x4096, batch 64, the MSVD S2VT
   train split's vocabulary at min count 2), each caption --caption-words words + <eos> (no padding). --warmup
   untimed steps after the first (tracing) one, then --train-steps (--full-steps for the full preset) timed steps
   (median). --full-archs picks the architectures at the full preset's sizes (--quick: s2vt only).
4. caption: `pipelines.captioning.inference.Captioner(model, words, cfg).decode_graph(beam)(features)` on one batch
   of --caption-batch clips' features, beams 1 (greedy), 3 and 5 (--beams), with a freshly built untrained
   captioner of each preset and architecture (the full preset's Captioner gets `weights: none`, so a backbone it
   builds is a random VGG16; the detail column gives its construction time, not part of the figure). Untrained
   captions run to about `decode.max_length` (20) words, and a batch decodes until its longest caption ends, so
   these are near worst-case lengths; a trained model's captions are shorter (the detail column gives the words
   per caption). (A model after a few training steps on random captions is no better: it learns that <eos> is
   the most frequent token and stops at once.) One untimed call (tracing), then --caption-calls timed calls
   (median). Quick-preset features come from the conv encoder on random frames, computed beforehand (not timed).

Run:
    python benchmarks/captioning.py                      # ~3 min on 2 cores
    python benchmarks/captioning.py --quick              # < 1 min: small counts, one timed call each
    python benchmarks/captioning.py --json               # one JSON object per figure (progress on stderr)
    python benchmarks/captioning.py --only decode,caption --msvd-clips /path/to/avis

Data: the generated clips are written to a temporary folder; the real clips come from --msvd-clips, default
$LSTM_APPS_SHARED_DATA/msvd/sample_clips, else <repo>/../shared/data/msvd/sample_clips (skipped, with a note,
when the folder does not exist). Prints a table and one JSON line at the end (--json: JSON lines only).
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _common

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

PARTS = ("decode", "features", "train", "caption")
ARCHITECTURES = ("s2vt", "sa-lstm")
MSVD_VOCAB_FALLBACK = 5295  # the S2VT train split's words seen twice or more, plus the 3 specials

# --quick: value / default run: value (None = the flag's own default)
QUICK = {"clips_per_combination": 1, "decode_passes": 1, "msvd_limit": 2, "frame_batch": 8, "feature_calls": 1,
         "encoder_batch": 256, "train_steps": 3, "full_steps": 1, "warmup": 0, "caption_batch": 8,
         "caption_calls": 1, "beams": "1,3,5", "full_archs": "s2vt"}
DEFAULT = {"clips_per_combination": 2, "decode_passes": 3, "msvd_limit": 0, "frame_batch": 16, "feature_calls": 3,
           "encoder_batch": 256, "train_steps": 20, "full_steps": 5, "warmup": 2, "caption_batch": 32,
           "caption_calls": 3, "beams": "1,3,5", "full_archs": "s2vt,sa-lstm"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small counts, one timed call each (< 1 min)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per figure (and one with the machine first) instead of the table")
    p.add_argument("--only", default=",".join(PARTS), help=f"parts to run, comma-separated (default: all of "
                                                           f"{','.join(PARTS)})")
    p.add_argument("--msvd-clips", default=str(_common.default_data_dir("msvd") / "sample_clips"),
                   help="folder of real MSVD .avi clips (default: %(default)s; skipped when missing)")
    p.add_argument("--msvd-limit", type=int, help="use the first N real clips, 0 = all (default 0; --quick 2)")
    p.add_argument("--clips-per-combination", type=int,
                   help="generated clips per colour x shape x direction, 80 clips each (default 2; --quick 1)")
    p.add_argument("--decode-passes", type=int, help="timed passes over the clips (default 3; --quick 1)")
    p.add_argument("--frame-batch", type=int, help="frames per vgg16 / mobilenet_v2 call (default 16; --quick 8)")
    p.add_argument("--encoder-batch", type=int, help="frames per conv frame encoder call (default 256)")
    p.add_argument("--feature-calls", type=int, help="timed calls per feature network (default 3; --quick 1)")
    p.add_argument("--train-steps", type=int, help="timed training steps, quick preset (default 20; --quick 3)")
    p.add_argument("--full-steps", type=int,
                   help="timed training steps, full preset sizes (default 5; --quick 1; 0 skips the full preset "
                        "in training and captioning)")
    p.add_argument("--warmup", type=int, help="untimed training steps after the tracing one (default 2; --quick 0)")
    p.add_argument("--full-archs", help="architectures at the full preset's sizes (default s2vt,sa-lstm; --quick "
                                        "s2vt); the quick preset always runs both")
    p.add_argument("--caption-words", type=int, default=10, help="words per training caption (default 10)")
    p.add_argument("--full-vocab", type=int, default=0,
                   help="full preset vocabulary (default 0 = from the MSVD S2VT train split at min count 2, "
                        f"else {MSVD_VOCAB_FALLBACK})")
    p.add_argument("--caption-batch", type=int, help="clips per captioning call (default 32; --quick 8)")
    p.add_argument("--caption-calls", type=int, help="timed calls per beam size (default 3; --quick 1)")
    p.add_argument("--beams", help="beam sizes, comma-separated (default 1,3,5)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="TF intra- and inter-op threads "
                                                                       "(default: all cores)")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    for key, value in (QUICK if args.quick else DEFAULT).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.only = [part.strip() for part in args.only.split(",") if part.strip()]
    unknown = sorted(set(args.only) - set(PARTS))
    if unknown:
        p.error(f"--only: unknown part(s) {', '.join(unknown)} (known: {', '.join(PARTS)})")
    args.beams = [int(b) for b in str(args.beams).split(",")]
    args.full_archs = [a.strip() for a in args.full_archs.split(",") if a.strip()]
    if set(args.full_archs) - set(ARCHITECTURES):
        p.error(f"--full-archs: expected some of {','.join(ARCHITECTURES)}")
    positive = ("clips_per_combination", "decode_passes", "frame_batch", "encoder_batch", "feature_calls",
                "train_steps", "caption_batch", "caption_calls", "caption_words")
    bad = [k for k in positive if getattr(args, k) < 1] + (["beams"] if min(args.beams) < 1 else []) + \
        [k for k in ("full_steps", "msvd_limit", "full_vocab", "warmup") if getattr(args, k) < 0]
    if bad:
        p.error("expected values >= 1 (>= 0 for --full-steps, --msvd-limit, --full-vocab, --warmup): " +
                ", ".join("--" + k.replace("_", "-") for k in bad))
    return args


class Output:
    """Progress on stdout (on stderr with --json); each figure as a row, and with --json printed at once as one
    JSON object."""

    def __init__(self, as_json):
        self.as_json = as_json
        self.rows = []

    def progress(self, text):
        print(text, file=sys.stderr if self.as_json else sys.stdout, flush=True)

    def figure(self, row):
        self.rows.append(row)
        if self.as_json:
            print(json.dumps({"benchmark": "captioning", **row}, default=str), flush=True)


def median_times(fn, calls):
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


# --------------------------------------------------------------------------------------------- 1. decode
def count_frames(path):
    """Decode every frame of a clip with PyAV, nothing else (no RGB conversion, no resizing): its frame count."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for _ in container.decode(stream))


def time_decoding(name, paths, num_frames, size, passes, out, decode_only=False):
    from lstm_apps.inputs.video import read_frames

    paths = list(paths)
    read_frames(paths[0], num_frames, size=size)  # untimed: imports, codec set-up
    source = [count_frames(p) for p in paths]
    def one_pass():
        for path in paths:
            read_frames(path, num_frames, size=size)

    seconds, _ = median_times(one_pass, passes)
    frames = len(paths) * num_frames
    mean_source = sum(source) / len(source)
    out.figure({"part": "decode", "measure": f"read_frames, {name} ({len(paths)} clips, median of {passes} passes)",
                "frames_per_s": frames / seconds, "clips_per_s": len(paths) / seconds,
                "ms": seconds / len(paths) * 1000, "ms_per": "clip",
                "source_frames_per_s": sum(source) / seconds,
                "detail": f"{num_frames} frames of {size[0]}x{size[1]} per clip, from {mean_source:.0f} source "
                          f"frames/clip on average ({min(source)}-{max(source)}); "
                          f"{sum(source) / seconds:,.0f} source frames/s"})
    if decode_only:
        seconds, _ = median_times(lambda: [count_frames(p) for p in paths], passes)
        out.figure({"part": "decode", "measure": f"decode only (PyAV, no RGB/resize), {name}",
                    "clips_per_s": len(paths) / seconds, "ms": seconds / len(paths) * 1000, "ms_per": "clip",
                    "source_frames_per_s": sum(source) / seconds,
                    "detail": f"{sum(source) / seconds:,.0f} source frames/s: the part of read_frames that is "
                              f"decoding; the rest is converting + resizing all {mean_source:.0f} frames/clip"})


# --------------------------------------------------------------------------------------------- 2. features
def time_features(args, quick_cfg, out):
    import numpy as np
    from pipelines.captioning.features import BACKBONES, build_backbone
    from pipelines.captioning.model import build_frame_encoder

    rng = np.random.default_rng(args.seed)
    networks = []
    for name in ("vgg16", "mobilenet_v2"):
        networks.append((name, lambda name=name: build_backbone(name, "none"), BACKBONES[name].size,
                         args.frame_batch, 80))
    size = quick_cfg["features"]["size"]
    networks.append(("conv frame encoder (quick preset)", lambda: build_frame_encoder(quick_cfg["features"]),
                     (size, size), args.encoder_batch, quick_cfg["data"]["num_frames"]))
    for name, build, (height, width), batch, frames_per_clip in networks:
        out.progress(f"features: {name} ...")
        start = time.perf_counter()
        model = build()
        build_s = time.perf_counter() - start
        frames = rng.integers(0, 256, (batch, height, width, 3), dtype=np.uint8)
        start = time.perf_counter()
        features = model.predict_on_batch(frames)
        first_s = time.perf_counter() - start
        seconds, _ = median_times(lambda model=model: model.predict_on_batch(frames), args.feature_calls)
        out.figure({"part": "features",
                    "measure": f"{name}, batch {batch} (median of {args.feature_calls})",
                    "frames_per_s": batch / seconds, "clips_per_s": batch / seconds / frames_per_clip,
                    "ms": seconds * 1000, "ms_per": "call",
                    "detail": f"{height}x{width} -> {features.shape[-1]}; {model.count_params():,} params; clips/s "
                              f"at {frames_per_clip} frames/clip; built in {build_s:.1f} s, first call "
                              f"{first_s:.1f} s"})
        del model


# --------------------------------------------------------------------------------------------- 3. train
def sized_vocabulary(size):
    """A vocabulary of `size` words (the specials and placeholders): only its size shapes the model."""
    from lstm_apps.inputs.text import SPECIALS, Vocabulary

    return Vocabulary([*SPECIALS, *(f"w{i}" for i in range(size - len(SPECIALS)))])


def captioning_configs(args, generated_dir):
    """{preset: (config overrides, vocabulary, clip shape, where the vocabulary comes from)} for the presets to run;
    each architecture's config is built from them (`preset_config`)."""
    from lstm_apps.config import build_config
    from pipelines.captioning import data as data_lib
    from pipelines.captioning.pipeline import build_vocabulary
    from pipelines.captioning.task import TASK

    setups = {}
    cfg = build_config(TASK.presets_dir, "quick")
    train_split = cfg["data"]["train_split"]
    train = data_lib.read_captions(generated_dir, (train_split,)).references[train_split]
    vocabulary = build_vocabulary(train, cfg["data"]["min_count"])
    size = cfg["features"]["size"]
    setups["quick"] = ([], vocabulary, (cfg["data"]["num_frames"], size, size, 3), "generated clips' vocabulary")
    if args.full_steps:
        overrides = ["features.weights=none"]  # nothing to download; Captioner builds the (unused) backbone
        cfg = build_config(TASK.presets_dir, "full", overrides=overrides)
        vocabulary, source = sized_vocabulary(args.full_vocab) if args.full_vocab else None, "--full-vocab"
        split = _common.default_data_dir("msvd") / "s2vt_split"
        if vocabulary is None and (split / data_lib.MAP_FILE).is_file():
            refs = data_lib.read_captions(split, (train_split,)).references[train_split]
            vocabulary = build_vocabulary(refs, cfg["data"]["min_count"])
            source = f"MSVD S2VT train split, min count {cfg['data']['min_count']}"
        elif vocabulary is None:
            vocabulary, source = sized_vocabulary(MSVD_VOCAB_FALLBACK), "S2VT split not found: the MSVD figure"
        setups["full"] = (overrides, vocabulary, (cfg["data"]["num_frames"], 4096), source)
    return setups


def preset_config(preset, overrides, arch):
    from lstm_apps.config import build_config
    from pipelines.captioning.task import TASK

    return build_config(TASK.presets_dir, preset, overrides=[*overrides, f"model.name={arch}"])


def model_input(clip_shape):
    """What `build_model` reads from the task's data: the shape of one clip's array (the batches are random)."""
    import types

    return types.SimpleNamespace(clip_shape=clip_shape)


def random_batches(rng, clip_shape, batch, vocab, words, count=2):
    """`count` random ([clip, <eos> + words], words + <eos>) batches: uint8 frames or float32 features."""
    import numpy as np
    from lstm_apps.inputs.text import EOS_ID

    batches = []
    for _ in range(count):
        if len(clip_shape) == 4:
            clip = rng.integers(0, 256, (batch, *clip_shape), dtype=np.uint8)
        else:  # post-ReLU like VGG16 fc2
            clip = np.maximum(rng.normal(0, 1, (batch, *clip_shape)), 0).astype(np.float32)
        ids = rng.integers(3, vocab, (batch, words), dtype=np.int32)
        eos = np.full((batch, 1), EOS_ID, np.int32)
        batches.append(((clip, np.concatenate([eos, ids], 1)), np.concatenate([ids, eos], 1)))
    return batches


def time_training(preset, arch, setup, args, rng, out):
    """Build and compile as `train` does (`runner.compiled_model`), time train_on_batch."""
    import keras
    from lstm_apps import runner
    from pipelines.captioning.task import TASK

    overrides, vocabulary, clip_shape, vocab_source = setup
    vocab = len(vocabulary)
    cfg = preset_config(preset, overrides, arch)
    train_cfg = cfg["train"]
    keras.utils.set_random_seed(args.seed)
    model = runner.compiled_model(TASK, cfg, model_input(clip_shape), vocabulary)
    batch = train_cfg["batch_size"]
    batches = random_batches(rng, clip_shape, batch, vocab, args.caption_words)
    steps = args.train_steps if preset == "quick" else args.full_steps
    start = time.perf_counter()
    model.train_on_batch(*batches[0])
    first_s = time.perf_counter() - start
    for i in range(args.warmup):
        model.train_on_batch(*batches[(i + 1) % len(batches)])
    times = []
    for i in range(steps):
        start = time.perf_counter()
        model.train_on_batch(*batches[i % len(batches)])
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    m = cfg["model"]
    shape = "x".join(map(str, clip_shape))
    encoder = f"conv {cfg['features']['conv_filters']} -> {cfg['features']['conv_dim']}, " \
        if len(clip_shape) == 4 else ""
    out.figure({"part": "train", "measure": f"train {arch}, {preset} preset (median of {steps} steps)",
                "captions_per_s": batch / seconds, "words_per_s": batch * (args.caption_words + 1) / seconds,
                "ms": seconds * 1000, "ms_per": "step",
                "detail": f"batch {batch} of {shape} {'uint8 frames' if len(clip_shape) == 4 else 'features'} + "
                          f"{args.caption_words} words + <eos>; {encoder}emb {m['embedding_dim']}, "
                          f"{m['layers']} x LSTM {m['units']}, vocab {vocab:,} ({vocab_source}); "
                          f"{model.count_params():,} params; first step (tracing) {first_s:.1f} s"})


# --------------------------------------------------------------------------------------------- 4. caption
def time_captioning(preset, arch, setup, args, rng, out):
    """decode_graph(beam) clips/s of an untrained captioner (the task's `build_model`, its inference module)."""
    import keras
    import numpy as np
    import tensorflow as tf
    from pipelines.captioning.features import TRAINABLE
    from pipelines.captioning.inference import Captioner
    from pipelines.captioning.task import TASK

    overrides, vocabulary, clip_shape, _ = setup
    cfg = preset_config(preset, overrides, arch)
    keras.utils.set_random_seed(args.seed)
    model = TASK.build_model(cfg, model_input(clip_shape), vocabulary)
    start = time.perf_counter()
    captioner = Captioner(model, vocabulary.words, cfg)
    build_s = time.perf_counter() - start
    batch, num_frames = args.caption_batch, cfg["data"]["num_frames"]
    if cfg["features"]["backbone"] == TRAINABLE:
        frames = rng.integers(0, 256, (batch, num_frames, *captioner.frame_shape), dtype=np.uint8)
        features = captioner.features(tf.constant(frames))  # not timed
    else:
        features = tf.constant(np.maximum(rng.normal(0, 1, (batch, num_frames, captioner.feature_dim)), 0),
                               tf.float32)
    built = f"; Captioner built in {build_s:.1f} s" if cfg["features"]["backbone"] != TRAINABLE else ""
    for beam in args.beams:
        graph = captioner.decode_graph(beam)
        start = time.perf_counter()
        outputs = graph(features)
        first_s = time.perf_counter() - start
        seconds, _ = median_times(lambda: graph(features)["caption"].numpy(), args.caption_calls)
        outputs = graph(features)
        lengths = [len(c.split()) for c in outputs["caption"].numpy()]
        name = "greedy" if beam == 1 else f"beam {beam}"
        out.figure({"part": "caption", "measure": f"caption {arch}, {preset} preset, {name} "
                                                  f"(batch {batch}, median of {args.caption_calls})",
                    "clips_per_s": batch / seconds, "ms": seconds * 1000, "ms_per": "call",
                    "detail": f"features {num_frames}x{captioner.feature_dim}; {np.mean(lengths):.1f} words/caption "
                              f"(max {max(lengths)}, limit {captioner.max_length}); first call (tracing) "
                              f"{first_s:.1f} s" + (built if beam == args.beams[0] else "")})


# --------------------------------------------------------------------------------------------- main
def main(argv=None):
    started = time.perf_counter()
    args = parse_args(argv)
    out = Output(args.json)
    import keras
    import numpy as np
    import tensorflow as tf
    tf.get_logger().setLevel("ERROR")  # each decode_graph(beam) traces once: TF's retracing warning is expected
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    machine = _common.machine_info(threads=args.threads, versions=f"tensorflow {tf.__version__} / keras "
                                   f"{keras.__version__}", gpu=", ".join(gpus) if gpus else "none visible")
    if args.json:
        print(json.dumps({"benchmark": "captioning", "machine": machine, "settings": vars(args)}), flush=True)
    else:
        _common.print_machine(machine)

    from lstm_apps.config import build_config
    from pipelines.captioning import synthetic
    from pipelines.captioning.task import TASK

    notes = []
    rng = np.random.default_rng(args.seed)
    quick_cfg = build_config(TASK.presets_dir, "quick")
    with tempfile.TemporaryDirectory(prefix="captioning-bench-") as work_dir:
        out.progress(f"generating clips ({80 * args.clips_per_combination}) ...")
        start = time.perf_counter()
        counts = synthetic.generate(work_dir, clips_per_combination=args.clips_per_combination)
        generate_s = time.perf_counter() - start
        clips = sorted((Path(work_dir) / "videos").glob("*.mp4"))
        notes.append(f"generated {sum(counts.values())} clips (H.264 .mp4, 16 frames of 64x64) in {generate_s:.1f} s")

        if "decode" in args.only:
            out.progress("decode: generated clips ...")
            size = quick_cfg["features"]["size"]
            time_decoding("generated .mp4", clips, quick_cfg["data"]["num_frames"], (size, size),
                          args.decode_passes, out)
            msvd = Path(args.msvd_clips)
            real = sorted(p for p in msvd.glob("*") if p.suffix.lower() == ".avi") if msvd.is_dir() else []
            if args.msvd_limit:
                real = real[: args.msvd_limit]
            if real:
                out.progress("decode: MSVD clips ...")
                time_decoding("MSVD .avi", real, 80, (224, 224), args.decode_passes, out, decode_only=True)
            else:
                notes.append(f"real clips skipped: no .avi files in {msvd} (pass --msvd-clips)")
                out.progress(f"note: {notes[-1]}")

        if "features" in args.only:
            time_features(args, quick_cfg, out)

        if "train" in args.only or "caption" in args.only:
            setups = captioning_configs(args, work_dir)
            for preset, setup in setups.items():
                for arch in (ARCHITECTURES if preset == "quick" else args.full_archs):
                    if "train" in args.only:
                        out.progress(f"{preset} preset, {arch}: training ...")
                        time_training(preset, arch, setup, args, rng, out)
                        keras.backend.clear_session()
                    if "caption" in args.only:
                        out.progress(f"{preset} preset, {arch}: captioning ...")
                        time_captioning(preset, arch, setup, args, rng, out)
                        keras.backend.clear_session()
            if "caption" in args.only:
                notes.append("captioning models are untrained (random initialisation, seed --seed): their captions "
                             "run to about decode.max_length words, where a trained model's are shorter (MSVD "
                             "references: 7 words on average); a batch decodes until its longest caption ends, so "
                             "these are near worst-case lengths (words/caption in the detail column)")
    total_s = time.perf_counter() - started
    machine["load_avg_after"] = _common.load_average()
    if args.json:
        print(json.dumps({"benchmark": "captioning", "measure": "total wall time", "seconds": total_s,
                          "load_avg_after": machine["load_avg_after"], "notes": notes}), flush=True)
        return
    notes += ["frames/s (decode) = frames read_frames returns; (features) = frames through the network. "
              "ms = median ms per clip (decode), per call (features, caption) or per training step.",
              "read_frames decodes with PyAV's own threads (FFmpeg 'AUTO'), whatever --threads says.",
              f"total wall time {total_s:.0f} s", _common.NOISE_NOTE]
    _common.report("captioning", "Captioning: decoding, feature extraction, training and captioning throughput "
                   "(higher is better)", out.rows,
                   [("measure", "measure", None), ("frames_per_s", "frames/s", ",.1f"),
                    ("clips_per_s", "clips/s", ",.2f"), ("captions_per_s", "captions/s", ",.1f"),
                    ("ms", "ms", ",.1f"), ("detail", "detail", None)],
                   machine, vars(args), notes=notes)


if __name__ == "__main__":
    main()
