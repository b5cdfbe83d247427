"""Language-model throughput: the whole model (embedding + LSTM stack + tied softmax) in Keras vs the same model in
PyTorch, evaluation tokens/s, and input-pipeline tokens/s.

* training: one optimizer step (forward, cross-entropy, backward, Adam with global-norm clipping) of the task's own
  model as training builds and compiles it (`runner.compiled_model`: stateful network, dropout on, unigram output
  bias, the perplexity metric) from a preset on the whole PTB vocabulary, against a PyTorch twin: nn.Embedding ->
  dropout -> nn.LSTM -> dropout -> (projection) -> logits tied to the embedding, the hidden state carried
  (detached) between steps. Same shapes (preset batch_size x bptt), same vocabulary size, same
  random token windows, same thread count; each framework in its own subprocess (as in lstm_throughput.py).
* evaluation: the task's `stream_log_likelihood` (batch 1, windows of 200, state carried) over the first
  --eval-tokens tokens of PTB valid, and torch's no-grad equivalent.
* input pipeline: reading + encoding ptb.train.txt (the task's reader), and iterating `bptt_dataset` (tokens/s).

Run:
    python benchmarks/language_model.py                   # quick preset shapes (~1 min on 2 cores)
    python benchmarks/language_model.py --preset full     # 2 x 400, the PTB full preset
Needs torch (pip install torch==2.13.0, the `bench` extra) unless --frameworks keras.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import _common
from lstm_throughput import RESULT_PREFIX, time_steps, token_batches


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="quick", help="quick | full: the model and batch shapes (default: quick)")
    p.add_argument("--data-dir", default=str(_common.default_data_dir("ptb")))
    p.add_argument("--frameworks", default="keras,torch")
    p.add_argument("--steps", type=int, default=10, help="timed training steps (default 10)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--eval-tokens", type=int, default=20000)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    return p.parse_args(argv)


PRESETS_DIR = _common.REPO / "pipelines" / "language_model" / "presets"  # TASK.presets_dir, without TensorFlow


def settings(args):
    from lstm_apps.config import build_config
    cfg = build_config(PRESETS_DIR, args.preset, overrides=["data.train_tokens=0"])  # the whole PTB vocabulary
    return cfg, 10001  # PTB: 10k words + <pad>


def read_data(args, cfg, splits=("train", "valid")):
    """The task's reader (TF-free, so the torch worker reads the same ids)."""
    from pipelines.language_model import data as data_lib
    return data_lib.load(cfg, args.data_dir, splits)


def eval_stream(args, data):
    import numpy as np
    from lstm_apps.inputs.text import stream
    return stream(data.ids["valid"][: args.eval_tokens]).astype(np.int32)


def keras_worker(args):
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras
    from lstm_apps import runner
    from pipelines.language_model.inference import stream_log_likelihood
    from pipelines.language_model.model import inference_network
    from pipelines.language_model.task import TASK

    cfg, vocab = settings(args)
    t = cfg["train"]
    data = TASK.read_data(cfg, args.data_dir, ("train", "valid"))
    assert len(data.vocabulary) == vocab, len(data.vocabulary)
    keras.utils.set_random_seed(args.seed)
    model = runner.compiled_model(TASK, cfg, data, data.vocabulary)  # the vocabulary is what prepare_run returns
    batches = [(tf.constant(x), tf.constant(y)) for x, y in token_batches(t["batch_size"], t["bptt"], vocab, args.seed)]
    first, times, loss = time_steps(lambda x, y: float(model.train_on_batch(x, y, return_dict=True)["loss"]), batches,
                                    args.warmup, args.steps)
    network = inference_network(cfg, model)
    token_stream = eval_stream(args, data)
    stream_log_likelihood(network, token_stream[:401])  # trace
    start = time.perf_counter()
    _, count = stream_log_likelihood(network, token_stream)
    return {"step_s": times, "first_step_s": first, "eval_tokens_per_s": count / (time.perf_counter() - start),
            "params": int(model.count_params()), "version": f"tensorflow {tf.__version__} / keras {keras.__version__}"}


def torch_worker(args):
    import torch
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)
    from torch import nn

    cfg, vocab = settings(args)
    m, t = cfg["model"], cfg["train"]
    torch.manual_seed(args.seed)

    class LanguageModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(vocab, m["embedding_dim"])
            self.lstm = nn.LSTM(m["embedding_dim"], m["units"], num_layers=m["layers"], batch_first=True,
                                dropout=m["dropout"])
            self.dropout = nn.Dropout(m["dropout"])
            self.projection = nn.Linear(m["units"], m["embedding_dim"]) if m["units"] != m["embedding_dim"] else None
            self.bias = nn.Parameter(torch.zeros(vocab))

        def forward(self, tokens, state=None):
            outputs, state = self.lstm(self.dropout(self.embedding(tokens)), state)
            outputs = self.dropout(outputs)
            if self.projection is not None:
                outputs = self.projection(outputs)
            return outputs @ self.embedding.weight.T + self.bias, state

    model = LanguageModel()
    optimizer = torch.optim.Adam(model.parameters(), lr=t["learning_rate"])
    loss_fn = nn.CrossEntropyLoss()
    batches = [(torch.from_numpy(x).long(), torch.from_numpy(y).long())
               for x, y in token_batches(t["batch_size"], t["bptt"], vocab, args.seed)]
    carried = {"state": None}

    def step(x, y):
        model.train()
        optimizer.zero_grad(set_to_none=True)
        logits, state = model(x, carried["state"])
        carried["state"] = tuple(s.detach() for s in state)
        loss = loss_fn(logits.reshape(-1, vocab), y.reshape(-1))
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), t["clipnorm"])
        optimizer.step()
        return loss.item()

    first, times, _ = time_steps(step, batches, args.warmup, args.steps)
    token_stream = torch.from_numpy(eval_stream(args, read_data(args, cfg))).long()
    model.eval()
    start = time.perf_counter()
    with torch.no_grad():
        state = None
        for begin in range(0, len(token_stream) - 1, 200):
            window = token_stream[begin:begin + 201]
            logits, state = model(window[None, :-1], state)
            torch.log_softmax(logits, -1).gather(-1, window[None, 1:, None]).sum().item()
    return {"step_s": times, "first_step_s": first,
            "eval_tokens_per_s": (len(token_stream) - 1) / (time.perf_counter() - start),
            "params": sum(p.numel() for p in model.parameters()), "version": f"torch {torch.__version__}"}


def pipeline_figures(args):
    import numpy as np
    from lstm_apps.inputs.text import bptt_dataset, stream
    cfg, _ = settings(args)
    start = time.perf_counter()
    data = read_data(args, cfg, ("train",))  # read, vocabulary, encode
    read_s = time.perf_counter() - start
    ds = bptt_dataset(stream(data.ids["train"]), cfg["train"]["batch_size"], cfg["train"]["bptt"])
    start = time.perf_counter()
    count = sum(int(np.prod(x.shape)) for x, _ in ds)
    return {"read_encode_tokens_per_s": len(data.tokens["train"]) / read_s,
            "dataset_tokens_per_s": count / (time.perf_counter() - start)}


def spawn(framework, args):
    command = [sys.executable, os.path.abspath(__file__), "--worker", framework, "--preset", args.preset,
               "--data-dir", args.data_dir, "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--eval-tokens", str(args.eval_tokens), "--threads", str(args.threads), "--seed", str(args.seed)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS=str(args.threads), OMP_WAIT_POLICY="PASSIVE")
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode or not lines:
        raise SystemExit(f"error: the {framework} worker failed:\n" + (proc.stdout + proc.stderr)[-2000:])
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        result = (keras_worker if args.worker == "keras" else torch_worker)(args)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return
    _common.require_dir(args.data_dir, "--data-dir")
    machine = _common.machine_info(threads=args.threads)
    _common.print_machine(machine)
    cfg, vocab = settings(args)
    tokens_per_step = cfg["train"]["batch_size"] * cfg["train"]["bptt"]
    rows, results = [], {}
    for framework in filter(None, args.frameworks.split(",")):
        result = results[framework] = spawn(framework, args)
        step = statistics.median(result["step_s"])
        rows.append({"measure": f"train ({framework})", "tokens_per_s": tokens_per_step / step, "ms": step * 1000,
                     "version": result["version"]})
        rows.append({"measure": f"evaluate, batch 1 ({framework})", "tokens_per_s": result["eval_tokens_per_s"]})
    if {"keras", "torch"} <= set(results):
        ratio = statistics.median(results["torch"]["step_s"]) / statistics.median(results["keras"]["step_s"])
        rows.append({"measure": "train keras/torch", "tokens_per_s": ratio})
    pipeline = pipeline_figures(args)
    rows.append({"measure": "read + encode ptb.train.txt", "tokens_per_s": pipeline["read_encode_tokens_per_s"]})
    rows.append({"measure": "bptt_dataset iteration", "tokens_per_s": pipeline["dataset_tokens_per_s"]})
    machine["load_avg_after"] = _common.load_average()
    m = cfg["model"]
    _common.report("language_model", f"Language model, {args.preset} preset: {m['layers']} x {m['units']} LSTM, "
                   f"embedding {m['embedding_dim']}, batch {cfg['train']['batch_size']} x bptt {cfg['train']['bptt']}, "
                   f"vocab {vocab} (tokens/s, higher is better)", rows,
                   [("measure", "measure", None), ("tokens_per_s", "tokens/s (or ratio)", ",.1f"),
                    ("ms", "ms/step", ".0f"), ("version", "version", None)],
                   machine, vars(args), notes=["keras/torch > 1 means Keras is faster. " + _common.NOISE_NOTE])


if __name__ == "__main__":
    main()
