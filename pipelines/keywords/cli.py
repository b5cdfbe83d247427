"""The keywords task's own command-line flags (TF-free: `lstm-apps keywords --help` imports no TensorFlow)."""

PREDICT_OPTIONS = {}
RUN_DIR_ONLY = ()
