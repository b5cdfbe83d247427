"""`lstm-apps TASK VERB ...`: one entrypoint for every task. Every lstm_apps error becomes one line + exit code 2.

  lstm-apps TASK prepare  --data-dir DIR --data-cache DIR [--preset ...] [--config FILE] [--set key=value ...]
  lstm-apps TASK train    --data-dir DIR --run-dir DIR [--data-cache DIR] [--preset quick|full] [--config FILE]
                          [--set key=value ...]
  lstm-apps TASK evaluate --run-dir DIR [--split test] [--data-dir DIR]
  lstm-apps TASK predict  (--run-dir DIR | --model EXPORT_DIR) INPUT... [task options, see --help]
  lstm-apps TASK export   --run-dir DIR --export-dir DIR

TensorFlow's C++ runtime is kept off stderr (`lstm-apps --verbose ...` or LSTM_APPS_VERBOSE=1 brings it back).
"""
import argparse
import contextlib
import io
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from lstm_apps.errors import LostWorkerError, LSTMAppsError  # noqa: E402
from lstm_apps.tasks import TASK_PACKAGES, cli_options  # noqa: E402

EXIT_USER_ERROR = 2


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2), like every other user error."""

    def error(self, message):
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see --help)\n")


def _config_arguments(parser):
    parser.add_argument("--data-dir", help="local copy of the dataset (default: download into the Keras cache)")
    parser.add_argument("--data-cache", metavar="DIR",
                        help="prepare the dataset once into shards in DIR and stream them (data.cache; "
                             "kept until the files or the data settings change)")
    parser.add_argument("--preset", default="quick",
                        help="quick | full | a preset of the task's own, e.g. keywords speakers (default: quick)")
    parser.add_argument("--config", help="YAML file overriding the preset")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override one config key, e.g. --set train.epochs=3")


def _train_arguments(parser):
    parser.add_argument("--run-dir", required=True)
    _config_arguments(parser)


def _overrides(args):
    """--set, with --data-cache as the data.cache setting it stands for."""
    return [*args.set, *([f"data.cache={args.data_cache}"] if args.data_cache else [])]


def _evaluate_arguments(parser):
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--split", default="test", help="train, valid or test (default: test)")
    parser.add_argument("--data-dir", help="another copy of the run's data (default: the one it trained on)")


def _predict_arguments(parser):
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run-dir")
    source.add_argument("--model", help="an export dir (latest version) or one version folder")
    parser.add_argument("inputs", nargs="*", metavar="INPUT")


def _export_arguments(parser):
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--export-dir", required=True)


def _prepare(runner, task, args, options):
    runner.prepare(task, data_dir=args.data_dir, preset=args.preset, config_file=args.config,
                   overrides=_overrides(args))


def _train(runner, task, args, options):
    runner.train(task, args.run_dir, data_dir=args.data_dir, preset=args.preset, config_file=args.config,
                 overrides=_overrides(args))


def _evaluate(runner, task, args, options):
    print(json.dumps(runner.evaluate(task, args.run_dir, args.split, data_dir=args.data_dir)))


def _predict(runner, task, args, options):
    for result in runner.predict(task, args.inputs, run_dir=args.run_dir, model_dir=args.model, options=options):
        print(json.dumps(result), flush=True)


def _export(runner, task, args, options):
    print(f"exported {runner.export(task, args.run_dir, args.export_dir)}")


# verb -> (help, its arguments, what it runs); a task's cli.py adds flags to these (OPTIONS) and verbs of its own
# (VERBS: {verb: (help, {flag: argparse kwargs})}, run by the Task method of that name with the flags' values)
VERBS = {
    "prepare": ("decode/tokenize the dataset once into shards (data.cache) that train and evaluate stream",
                _config_arguments, _prepare),
    "train": ("train a model into a run dir (resumes an interrupted run)", _train_arguments, _train),
    "evaluate": ("score a trained run; writes RUN_DIR/metrics-SPLIT.json", _evaluate_arguments, _evaluate),
    "predict": ("one JSON line per input", _predict_arguments, _predict),
    "export": ("write a SavedModel version in the TF Serving layout", _export_arguments, _export),
}


def _option_name(flag):
    return flag.lstrip("-").replace("-", "_")


def build_parser():
    parser = _OneLineParser(prog="lstm-apps", description="LSTM pipelines: train, evaluate, predict, export.")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's own log lines on stderr (also: LSTM_APPS_VERBOSE=1)")
    tasks = parser.add_subparsers(dest="task", required=True, metavar="TASK", parser_class=_OneLineParser)
    for task in TASK_PACKAGES:
        declared = cli_options(task)
        verbs = tasks.add_parser(task, help=f"the {task} pipeline").add_subparsers(
            dest="verb", required=True, metavar="VERB", parser_class=_OneLineParser)
        for verb, (help_text, add_arguments, _) in VERBS.items():
            add_arguments(verbs.add_parser(verb, help=help_text))
        for verb, (help_text, _) in declared.VERBS.items():
            verbs.add_parser(verb, help=help_text)
        for verb, flags in task_flags(declared).items():
            for flag, kwargs in flags.items():
                verbs.choices[verb].add_argument(flag, **kwargs)
    return parser


def task_flags(declared):
    """{verb: {flag: argparse kwargs}}: the task's extra flags of the common verbs and its own verbs' flags."""
    return {**declared.OPTIONS, **{verb: flags for verb, (_, flags) in declared.VERBS.items()}}


def run(args):
    """Dispatch one parsed command to its task (shared by the console script and `python -m pipelines.X`)."""
    from lstm_apps import runner
    from lstm_apps.tasks import get_task

    task = get_task(args.task)
    flags = task_flags(cli_options(args.task)).get(args.verb, {})
    options = {_option_name(flag): getattr(args, _option_name(flag)) for flag in flags}
    if args.verb in VERBS:
        VERBS[args.verb][2](runner, task, args, options)
    else:
        getattr(task, args.verb.replace("-", "_"))(**options)


@contextlib.contextmanager
def native_logs_hidden(hidden=True):
    """Keep what TensorFlow's C++ runtime writes on file descriptor 2 (absl's "log messages before
    absl::InitializeLog()", cuInit failures, CPU-feature notices: TF_CPP_MIN_LOG_LEVEL no longer reaches all of
    them) off the terminal: fd 2 points at /dev/null while Python's sys.stderr writes to a copy of the real one,
    so the project's own messages and Python warnings still show. Only for the process's own stderr (an embedding
    program, or pytest's capture, keeps its own)."""
    if not hidden or sys.stderr is not sys.__stderr__ or sys.__stderr__ is None:
        yield
        return
    sys.stderr.flush()
    real = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = io.TextIOWrapper(os.fdopen(os.dup(real), "wb", buffering=0), encoding=sys.__stderr__.encoding,
                                  errors="backslashreplace", write_through=True)
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stderr.close()
        sys.stderr = sys.__stderr__
        os.dup2(real, 2)
        os.close(real)


def main(argv=None):
    args = build_parser().parse_args(argv)
    verbose = args.verbose or os.environ.get("LSTM_APPS_VERBOSE", "") not in ("", "0")
    with native_logs_hidden(not verbose):
        try:
            run(args)
        except LSTMAppsError as error:
            print(f"lstm-apps {args.task} {args.verb}: error: {error}", file=sys.stderr)
            if isinstance(error, LostWorkerError):  # TF's collective runtime can hold a normal exit for seconds
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(EXIT_USER_ERROR)
            return EXIT_USER_ERROR
        except KeyboardInterrupt:
            print("interrupted: run the same command again to resume from the last backup", file=sys.stderr)
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
