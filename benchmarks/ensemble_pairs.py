"""Keyword ensembles without retraining: each finished run alone, and every pairing of a --runs run with a --with
run, their class probabilities averaged exactly as `model.members` averages them, on one split of the runs' data.

Single runs spread by a couple of points (ops are not deterministic), so one ensemble run says little; pairing
existing member runs gives several ensemble figures from a few runs.
  python benchmarks/ensemble_pairs.py --runs runs/sc-a/members/0 runs/sc-b/members/0 \
      --with runs/sc-a/members/1 runs/sc-b/members/1 [--split test]
All runs must share the data and labels (their config.yaml names the data folder).
"""
import argparse
import json
import statistics

import _common  # noqa: F401  (puts the repository on sys.path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", required=True, help="finished keywords run dirs (first members)")
    parser.add_argument("--with", dest="partners", nargs="+", required=True, help="run dirs to pair them with")
    parser.add_argument("--split", default="test")
    args = parser.parse_args()

    import numpy as np

    from lstm_apps import training
    from lstm_apps.runner import load_run_config
    from pipelines.keywords import data as data_lib
    from pipelines.keywords.task import TASK, evaluation_dataset, split_targets

    data = data_lib.load(load_run_config(TASK, args.runs[0]))
    truth = split_targets(data, args.split)
    probabilities = {}
    for run_dir in dict.fromkeys(args.runs + args.partners):
        if training.load_json(f"{run_dir}/labels.json") != data.labels:
            raise SystemExit(f"error: {run_dir}: its labels differ from {args.runs[0]}'s")
        model = training.load_model(run_dir)
        probabilities[run_dir] = model.predict(evaluation_dataset(data, args.split, 256), verbose=0)

    def accuracy(p):
        return float(np.mean(p.argmax(-1) == truth))

    alone = {run_dir: accuracy(p) for run_dir, p in probabilities.items()}
    for run_dir, value in alone.items():
        print(f"alone  {value:.4f}  {run_dir}")
    pairs = {f"{a} + {b}": accuracy((probabilities[a] + probabilities[b]) / 2)
             for a in args.runs for b in args.partners}
    for name, value in pairs.items():
        print(f"pair   {value:.4f}  {name}")
    print(f"mean of {len(pairs)} pairs {statistics.mean(pairs.values()):.4f}")
    print(json.dumps({"split": args.split, "alone": alone, "pairs": pairs,
                      "mean_pair_accuracy": statistics.mean(pairs.values())}))


if __name__ == "__main__":
    main()
