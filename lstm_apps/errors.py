"""The few error types a user sees. The CLI prints each as one line and exits with code 2."""


class LSTMAppsError(Exception):
    """Base class: a problem with the user's input, reported without a traceback."""


class DataError(LSTMAppsError):
    """Bad or missing data; the message names the file (and line) and what was expected."""


class ConfigError(LSTMAppsError):
    """Bad configuration; the message names the key and what was expected."""


class RunDirError(LSTMAppsError):
    """The run directory cannot be used as asked (missing, or holding a finished run)."""
