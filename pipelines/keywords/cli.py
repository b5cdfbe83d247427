"""The keywords task's own command-line flags (TF-free: `lstm-apps keywords --help` imports no TensorFlow)."""

# extra flags of the common verbs: {verb: {flag: argparse kwargs}}; verbs of this task's own: {verb: (help,
# {flag: argparse kwargs})}, run by the Task method of that name
OPTIONS = {}
VERBS = {}
RUN_DIR_ONLY = ()
