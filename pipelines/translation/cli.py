"""The translation task's own command-line flags (TF-free: `--help` imports no TensorFlow)."""
from lstm_apps.config import positive_int

OPTIONS = {"predict": {
    "--beam": dict(type=positive_int, help="beam size, 1 = greedy (default: decode.beam_size)"),
    "--attention": dict(metavar="PNG", help="write the attention heat map of the first sentence to PNG"),
}}
VERBS = {}
# an export decodes with its own decode.beam_size and returns no attention weights
RUN_DIR_ONLY = ("beam", "attention")
