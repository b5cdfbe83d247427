"""The captioning task's own command-line flags (TF-free: `--help` imports no TensorFlow)."""
from lstm_apps.config import positive_int

OPTIONS = {"predict": {
    "--beam": dict(type=positive_int, help="beam size, 1 = greedy (default: decode.beam_size)"),
}}
VERBS = {}
# an export decodes with its own decode.beam_size
RUN_DIR_ONLY = ("beam",)
