"""`lstm-apps TASK VERB ...`: one entrypoint for every task. Every lstm_apps error becomes one line + exit code 2.

  lstm-apps TASK train    --data-dir DIR --run-dir DIR [--preset quick|full] [--config FILE] [--set key=value ...]
  lstm-apps TASK evaluate --run-dir DIR [--split test] [--data-dir DIR]
  lstm-apps TASK predict  (--run-dir DIR | --model EXPORT_DIR) INPUT... [task options, see --help]
  lstm-apps TASK export   --run-dir DIR --export-dir DIR
"""
import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from lstm_apps.errors import LSTMAppsError  # noqa: E402
from lstm_apps.tasks import TASK_PACKAGES, cli_options  # noqa: E402

EXIT_USER_ERROR = 2


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2), like every other user error."""

    def error(self, message):
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see --help)\n")


def build_parser():
    parser = _OneLineParser(prog="lstm-apps", description="LSTM pipelines: train, evaluate, predict, export.")
    tasks = parser.add_subparsers(dest="task", required=True, metavar="TASK", parser_class=_OneLineParser)
    for task in TASK_PACKAGES:
        options = cli_options(task)
        verbs = tasks.add_parser(task, help=f"the {task} pipeline").add_subparsers(
            dest="verb", required=True, metavar="VERB", parser_class=_OneLineParser)

        train = verbs.add_parser("train", help="train a model into a run dir (resumes an interrupted run)")
        train.add_argument("--data-dir", help="local copy of the dataset (default: download into the Keras cache)")
        train.add_argument("--run-dir", required=True)
        train.add_argument("--preset", default="quick",
                           help="quick | full | a preset of the task's own, e.g. keywords speakers (default: quick)")
        train.add_argument("--config", help="YAML file overriding the preset")
        train.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                           help="override one config key, e.g. --set train.epochs=3")

        evaluate = verbs.add_parser("evaluate", help="score a trained run; writes RUN_DIR/metrics-SPLIT.json")
        evaluate.add_argument("--run-dir", required=True)
        evaluate.add_argument("--split", default="test", help="train, valid or test (default: test)")
        evaluate.add_argument("--data-dir", help="another copy of the run's data (default: the one it trained on)")

        predict = verbs.add_parser("predict", help="one JSON line per input")
        source = predict.add_mutually_exclusive_group(required=True)
        source.add_argument("--run-dir")
        source.add_argument("--model", help="an export dir (latest version) or one version folder")
        predict.add_argument("inputs", nargs="*", metavar="INPUT")
        for flag, kwargs in options.PREDICT_OPTIONS.items():
            predict.add_argument(flag, **kwargs)

        export = verbs.add_parser("export", help="write a SavedModel version in the TF Serving layout")
        export.add_argument("--run-dir", required=True)
        export.add_argument("--export-dir", required=True)
    return parser


def run(args):
    """Dispatch one parsed command to its task (shared by the console script and `python -m pipelines.X`)."""
    from lstm_apps import runner
    from lstm_apps.tasks import get_task

    task = get_task(args.task)
    if args.verb == "train":
        runner.train(task, args.run_dir, data_dir=args.data_dir, preset=args.preset, config_file=args.config,
                     overrides=args.set)
    elif args.verb == "evaluate":
        metrics = runner.evaluate(task, args.run_dir, args.split, data_dir=args.data_dir)
        print(json.dumps(metrics))
    elif args.verb == "predict":
        names = [flag.lstrip("-").replace("-", "_") for flag in cli_options(args.task).PREDICT_OPTIONS]
        options = {name: getattr(args, name) for name in names}
        for result in runner.predict(task, args.inputs, run_dir=args.run_dir, model_dir=args.model, options=options):
            print(json.dumps(result), flush=True)
    elif args.verb == "export":
        path = runner.export(task, args.run_dir, args.export_dir)
        print(f"exported {path}")


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except LSTMAppsError as error:
        print(f"lstm-apps {args.task} {args.verb}: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume from the last backup", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
