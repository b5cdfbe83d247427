"""FSDD leave-one-speaker-out: train and evaluate one keywords run per held-out speaker, print each and the mean.

The honest, speaker-independent FSDD figure (the official split shares speakers between train and test).
  python benchmarks/fsdd_loso.py --data-dir ../shared/data/fsdd --runs-dir runs/loso [--preset quick] [--set k=v ...]
Each run is an ordinary `lstm-apps keywords train/evaluate` (an existing finished run is evaluated, not retrained).
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import _common

SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(_common.default_data_dir("fsdd")))
    parser.add_argument("--runs-dir", default="runs/loso")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="config overrides for every run, as in the CLI")
    parser.add_argument("--speakers", nargs="*", default=list(SPEAKERS))
    args = parser.parse_args()
    cli = [sys.executable, "-m", "pipelines.keywords"]
    results = {}
    for speaker in args.speakers:
        run_dir = Path(args.runs_dir) / speaker
        started = time.time()
        if not (run_dir / "model.keras").exists():
            subprocess.run([*cli, "train", "--data-dir", args.data_dir, "--run-dir", str(run_dir), "--preset",
                            args.preset, "--set", "data.split=speaker", f"data.test_speaker={speaker}", *args.set],
                           check=True, stdout=subprocess.DEVNULL)
        train_seconds = time.time() - started
        out = subprocess.run([*cli, "evaluate", "--run-dir", str(run_dir)], check=True, capture_output=True,
                             text=True).stdout
        accuracy = json.loads(out.strip().splitlines()[-1])["accuracy"]
        results[speaker] = accuracy
        print(f"{speaker:10s} test accuracy {accuracy:.4f}  (train {train_seconds:.0f} s)", flush=True)
    mean = sum(results.values()) / len(results)
    print(f"{'mean':10s} test accuracy {mean:.4f}")
    print(json.dumps({"preset": args.preset, "set": args.set, "per_speaker": results, "mean_accuracy": mean}))


if __name__ == "__main__":
    main()
