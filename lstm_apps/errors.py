"""The few error types a user sees. The CLI prints each as one line and exits with code 2."""


class LSTMAppsError(Exception):
    """Base class: a problem with the user's input, reported without a traceback."""


class DataError(LSTMAppsError):
    """Bad or missing data; the message names the file (and line) and what was expected."""


class ConfigError(LSTMAppsError):
    """Bad configuration; the message names the key and what was expected."""


class RunDirError(LSTMAppsError):
    """The run directory cannot be used as asked (missing, or holding a finished run)."""


class LostWorkerError(LSTMAppsError):
    """A worker of a multi-worker run died or became unreachable; the same commands resume the run."""


def library_reason(error):
    """A library exception's own reason, without TensorFlow's internals (op names, function nodes, device
    strings): `{{function_node ...}} Data too short when trying to read string [Op:DecodeWav] name:` -> `data too
    short when trying to read string`."""
    import re

    text = str(getattr(error, "message", None) or error).strip().splitlines()[0] if str(error).strip() else ""
    text = re.sub(r"\{\{[^}]*\}\}", "", text)
    text = re.sub(r"\s*\[Op:[^\]]*\].*$", "", text)
    text = re.sub(r"\s*name:\s*\S*$", "", text).strip(" .;:")
    return text[:1].lower() + text[1:] if text else type(error).__name__
