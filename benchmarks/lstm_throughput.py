"""LSTM language-model training-step throughput: Keras (lstm_apps.layers.LSTMStack) vs torch.nn.LSTM on the CPU.

What it measures: tokens/s (batch x sequence steps / step time) of one full training step (forward, sparse cross-entropy
loss, backward, plain SGD update) of the same word-level LSTM language model in both frameworks, on the same
shapes and the same random token batches:

    Embedding(vocab, units) -> LSTM x layers (units, all outputs) -> Dense(vocab) + softmax -> sparse CE -> SGD

* Keras: `lstm_apps.layers.LSTMStack` (cuDNN-eligible arguments; on a CPU the TF backend runs its generic
  while-loop kernel), compiled with `jit_compile=False` (the Keras default on a CPU-only machine; `--keras-jit`
  turns XLA on) and stepped with `model.train_on_batch`.
* torch: `nn.Embedding` + `nn.LSTM(batch_first=True)` + `nn.Linear`, `nn.CrossEntropyLoss` on the logits (the same
  maths as softmax + sparse CE), `torch.optim.SGD`, eager mode. torch's LSTM has two bias vectors per layer
  (b_ih, b_hh) where Keras has one, so it has 4*units more parameters per layer (printed; negligible work).

Shapes (--configs):
    ptb-small   2 layers x 200 units, batch 20, 35 steps, vocab 10000  (Zaremba et al. PTB "small")
    512x2       2 layers x 512 units, batch 64, 25 steps, vocab 10000
    or --custom LAYERS,UNITS,BATCH,STEPS,VOCAB

Each framework runs in its own subprocess (so neither's thread pools or spinning OpenMP workers slow the other),
one after the other, with the same thread count (--threads, default: all cores) set through
`tf.config.threading.set_{intra,inter}_op_parallelism_threads` and `torch.set_num_threads` /
`torch.set_num_interop_threads`. Each warms up (--warmup steps, which also pays for tracing) and then times
--steps steps one by one; the figure uses the median step time (robust to bursts of other work on the machine).
With --repeats R the frameworks alternate R times and the median (and best) of the runs is reported.

Run:
    python benchmarks/lstm_throughput.py                      # both shapes, 10 timed steps each (~2 min on 2 cores)
    python benchmarks/lstm_throughput.py --configs ptb-small --steps 50 --repeats 3
    python benchmarks/lstm_throughput.py --threads 1 --custom 1,256,32,50,10000

Needs torch for the comparison: pip install torch==2.13.0 (the `bench` extra); without it, use
--frameworks keras. Prints a table (tokens/s, ms/step, keras/torch ratio) and a JSON line at the end.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import _common

CONFIGS = {
    # name: (layers, units, batch, steps, vocab)
    "ptb-small": (2, 200, 20, 35, 10000),
    "512x2": (2, 512, 64, 25, 10000),
}
RESULT_PREFIX = "RESULT "
DISTINCT_BATCHES = 4


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", default="ptb-small,512x2",
                   help=f"comma-separated shape names: {', '.join(CONFIGS)} (default: both)")
    p.add_argument("--custom", action="append", default=[], metavar="L,U,B,T,V",
                   help="an extra shape: layers,units,batch,steps,vocab (repeatable)")
    p.add_argument("--frameworks", default="keras,torch", help="keras,torch (default) or just one")
    p.add_argument("--steps", type=int, default=10, help="timed training steps per run (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first, incl. tracing (default 3)")
    p.add_argument("--repeats", type=int, default=1, help="alternate the frameworks this many times (default 1)")
    p.add_argument("--threads", type=int, default=os.cpu_count(),
                   help=f"intra- and inter-op threads for both frameworks (default: all cores = {os.cpu_count()})")
    p.add_argument("--lr", type=float, default=0.1, help="SGD learning rate (default 0.1)")
    p.add_argument("--omp-wait-policy", choices=["passive", "active", "default"],
                   default=os.environ.get("OMP_WAIT_POLICY", "passive").lower(),
                   help="OMP_WAIT_POLICY for the workers (torch's CPU kernels use OpenMP; TF's do not). passive "
                        "(default, unless OMP_WAIT_POLICY is set) keeps idle OpenMP threads from spinning, which on a "
                        "busy machine made torch 4-7x slower here; 'default' leaves it unset (libgomp's own policy)")
    p.add_argument("--keras-jit", action="store_true", help="compile the Keras train step with XLA")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--worker", choices=["keras", "torch"], help=argparse.SUPPRESS)
    p.add_argument("--shape", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def token_batches(batch, steps, vocab, seed):
    """DISTINCT_BATCHES (inputs, next-token targets) pairs of int32 [batch, steps], the same for both frameworks."""
    import numpy as np
    tokens = np.random.default_rng(seed).integers(0, vocab, (DISTINCT_BATCHES, batch, steps + 1), dtype=np.int32)
    return [(t[:, :-1].copy(), t[:, 1:].copy()) for t in tokens]


def time_steps(step, batches, warmup, steps):
    """Run `warmup` untimed steps (the first one timed alone), then `steps` timed ones."""
    start = time.perf_counter()
    step(*batches[0])
    first = time.perf_counter() - start
    for i in range(1, warmup):
        step(*batches[i % len(batches)])
    times = []
    for i in range(steps):
        start = time.perf_counter()
        loss = step(*batches[i % len(batches)])  # a Python float: the step has finished
        times.append(time.perf_counter() - start)
    return first, times, loss


# --------------------------------------------------------------------------------------------------- workers
def keras_worker(shape, args):
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras

    from lstm_apps.layers import LSTMStack

    layers, units, batch, steps, vocab = shape
    keras.utils.set_random_seed(args.seed)
    tokens = keras.Input((steps,), batch_size=batch, dtype="int32", name="tokens")
    x = keras.layers.Embedding(vocab, units, name="embedding")(tokens)
    x = LSTMStack(units, num_layers=layers, return_sequences=True, name="lstm_stack")(x)
    probabilities = keras.layers.Dense(vocab, activation="softmax", name="probabilities")(x)
    model = keras.Model(tokens, probabilities)
    model.compile(optimizer=keras.optimizers.SGD(args.lr), loss="sparse_categorical_crossentropy",
                  jit_compile=args.keras_jit)
    batches = [(tf.constant(x), tf.constant(y)) for x, y in token_batches(batch, steps, vocab, args.seed)]
    first, times, loss = time_steps(lambda x, y: float(model.train_on_batch(x, y)), batches, args.warmup,
                                    args.steps)
    return {"params": int(model.count_params()), "first_step_s": first, "step_s": times, "last_loss": loss,
            "version": f"tensorflow {tf.__version__} / keras {keras.__version__}",
            "threads": [tf.config.threading.get_intra_op_parallelism_threads(),
                        tf.config.threading.get_inter_op_parallelism_threads()]}


def torch_worker(shape, args):
    import torch
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)
    from torch import nn

    layers, units, batch, steps, vocab = shape
    torch.manual_seed(args.seed)

    class LanguageModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(vocab, units)
            self.lstm = nn.LSTM(units, units, num_layers=layers, batch_first=True)
            self.logits = nn.Linear(units, vocab)

        def forward(self, tokens):
            outputs, _ = self.lstm(self.embedding(tokens))
            return self.logits(outputs)

    model = LanguageModel().train()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    batches = [(torch.from_numpy(x).long(), torch.from_numpy(y).long())
               for x, y in token_batches(batch, steps, vocab, args.seed)]

    def step(x, y):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x).reshape(-1, vocab), y.reshape(-1))
        loss.backward()
        optimizer.step()
        return loss.item()

    first, times, loss = time_steps(step, batches, args.warmup, args.steps)
    return {"params": sum(p.numel() for p in model.parameters()), "first_step_s": first, "step_s": times,
            "last_loss": loss, "version": f"torch {torch.__version__}",
            "threads": [torch.get_num_threads(), torch.get_num_interop_threads()]}


def run_worker(args):
    shape = tuple(json.loads(args.shape))
    result = (keras_worker if args.worker == "keras" else torch_worker)(shape, args)
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# --------------------------------------------------------------------------------------------------- driver
def spawn(framework, shape, args):
    command = [sys.executable, os.path.abspath(__file__), "--worker", framework, "--shape", json.dumps(shape),
               "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads),
               "--lr", str(args.lr), "--seed", str(args.seed)] + (["--keras-jit"] if args.keras_jit else [])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS=str(args.threads),
               MKL_NUM_THREADS=str(args.threads), PYTHONUNBUFFERED="1")
    env.pop("OMP_WAIT_POLICY", None)
    if args.omp_wait_policy != "default":
        env["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = [l for l in proc.stdout.splitlines() if l.startswith(RESULT_PREFIX)]
    if proc.returncode or not lines:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise SystemExit(f"error: the {framework} worker failed (exit {proc.returncode}):\n{tail}")
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def shapes_from(args):
    shapes = []
    for name in filter(None, args.configs.split(",")):
        if name not in CONFIGS:
            raise SystemExit(f"error: --configs {name}: unknown (known: {', '.join(CONFIGS)})")
        shapes.append((name, CONFIGS[name]))
    for text in args.custom:
        try:
            shape = tuple(int(v) for v in text.split(","))
            assert len(shape) == 5 and min(shape) > 0
        except (ValueError, AssertionError):
            raise SystemExit(f"error: --custom {text}: expected five positive integers LAYERS,UNITS,BATCH,STEPS,VOCAB")
        shapes.append(("custom " + "x".join(map(str, shape)), shape))
    if not shapes:
        raise SystemExit("error: no shapes chosen (--configs / --custom)")
    return shapes


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return run_worker(args)
    if args.steps < 1 or args.warmup < 1 or args.repeats < 1 or args.threads < 1:
        raise SystemExit("error: --steps, --warmup, --repeats and --threads must be >= 1")
    frameworks = [f for f in args.frameworks.split(",") if f]
    unknown = set(frameworks) - {"keras", "torch"}
    if unknown or not frameworks:
        raise SystemExit(f"error: --frameworks {args.frameworks}: expected keras, torch or both")
    shapes = shapes_from(args)
    machine = _common.machine_info(threads=args.threads)
    _common.print_machine(machine)
    print(f"threads: {args.threads} intra-op and {args.threads} inter-op, for both frameworks; "
          f"OMP_WAIT_POLICY={args.omp_wait_policy}; "
          f"{args.warmup} warm-up + {args.steps} timed steps, {args.repeats} repeat(s); each run in a fresh process")

    rows, versions = [], {}
    for name, shape in shapes:
        layers, units, batch, steps, vocab = shape
        runs = {f: [] for f in frameworks}
        for repeat in range(args.repeats):
            for framework in frameworks:
                result = spawn(framework, shape, args)
                result["median_step_s"] = statistics.median(result["step_s"])
                result["tokens_per_s"] = batch * steps / result["median_step_s"]
                result["mean_tokens_per_s"] = batch * steps * len(result["step_s"]) / sum(result["step_s"])
                runs[framework].append(result)
                versions[framework] = result["version"]
                print(f"  {name:<10} {framework:<5} run {repeat + 1}/{args.repeats}: "
                      f"{result['tokens_per_s']:9.0f} tokens/s, median {1000 * result['median_step_s']:7.1f} ms/step "
                      f"(mean {1000 * statistics.mean(result['step_s']):7.1f}) "
                      f"(first step {result['first_step_s']:.2f} s, threads {result['threads']}, "
                      f"params {result['params']:,}, loss {result['last_loss']:.3f})", flush=True)
        summary = {}
        for framework, results in runs.items():
            rates = [r["tokens_per_s"] for r in results]
            summary[framework] = {"best": max(rates), "median": statistics.median(rates),
                                  "mean_of_steps": statistics.median(r["mean_tokens_per_s"] for r in results),
                                  "params": results[0]["params"], "first_step_s": results[0]["first_step_s"]}
        row = {"config": name, "layers": layers, "units": units, "batch": batch, "seq_len": steps, "vocab": vocab}
        for framework in frameworks:
            row[f"{framework}_tokens_per_s"] = summary[framework]["median"]
            row[f"{framework}_best_tokens_per_s"] = summary[framework]["best"]
            row[f"{framework}_tokens_per_s_from_mean_step"] = summary[framework]["mean_of_steps"]
            row[f"{framework}_ms_per_step"] = 1000 * batch * steps / summary[framework]["median"]
            row[f"{framework}_params"] = summary[framework]["params"]
        if len(frameworks) == 2:
            row["keras_over_torch"] = row["keras_tokens_per_s"] / row["torch_tokens_per_s"]
        rows.append(row)

    columns = [("config", "config", None), ("layers", "layers", "d"), ("units", "units", "d"),
               ("batch", "batch", "d"), ("seq_len", "seq len", "d"), ("vocab", "vocab", "d")]
    for framework in frameworks:
        columns += [(f"{framework}_tokens_per_s", f"{framework} tok/s", ".0f"),
                    (f"{framework}_ms_per_step", f"{framework} ms/step", ".1f")]
    if len(frameworks) == 2:
        columns.append(("keras_over_torch", "keras/torch", ".2f"))
    notes = [f"tokens/s = batch x seq len / median step time (the median shrugs off bursts of other work); "
             f"median of {args.repeats} run(s) (best, and the rate from the mean step, in the JSON); "
             f"{args.steps} timed steps after {args.warmup} warm-up steps",
             f"threads: {args.threads} (intra-op and inter-op) for both; "
             f"OMP_WAIT_POLICY={args.omp_wait_policy}; keras jit_compile={args.keras_jit}; SGD lr={args.lr}",
             "versions: " + "; ".join(versions.values()),
             "keras/torch > 1 means Keras is faster. " + _common.NOISE_NOTE]
    machine["load_avg_after"] = _common.load_average()
    _common.report("lstm_throughput", "LSTM training-step throughput (tokens/s, higher is better)", rows, columns,
                   machine, {k: v for k, v in vars(args).items() if k not in ("worker", "shape")}, notes)


if __name__ == "__main__":
    main()
