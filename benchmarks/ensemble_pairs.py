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

    from lstm_apps import runner
    from lstm_apps.config import canonical_split
    from lstm_apps.run_dir import RunDir
    from pipelines.keywords.pipeline import evaluation_dataset, split_targets
    from pipelines.keywords.task import LABELS_FILE, TASK

    first = RunDir(args.runs[0])
    cfg = first.config(TASK)
    data = TASK.read_data(cfg, runner.resolve_data_dir(TASK, cfg, run=first), ())
    split = canonical_split(args.split)
    truth = split_targets(data, split)
    probabilities = {}
    for run_dir in dict.fromkeys(args.runs + args.partners):
        run = RunDir(run_dir)
        if run.load_json(LABELS_FILE) != data.labels:
            raise SystemExit(f"error: {run_dir}: its labels differ from {args.runs[0]}'s")
        probabilities[run_dir] = run.load_model().predict(evaluation_dataset(data, split, 256), verbose=0)

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
    print(json.dumps({"split": split, "alone": alone, "pairs": pairs,
                      "mean_pair_accuracy": statistics.mean(pairs.values())}))


if __name__ == "__main__":
    main()
