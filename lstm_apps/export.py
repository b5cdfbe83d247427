"""SavedModels in the TF Serving layout, written atomically, with warmup records, serving info and a signature check.

EXPORT_DIR/<version>/ appears only once complete: everything is written to a hidden staging folder beside it
(TF Serving ignores names that are not integers), checked by loading it back and calling every signature on the
warmup request, then renamed to the next free version; if another export claimed that number first, the next one is
tried. Staging folders are named after their writer's host and pid; an export removes those whose writer is dead.
"""
import errno
import os
import re
import secrets
import shutil
import socket
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
import yaml

from lstm_apps.errors import RunDirError

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
SERVING_INFO_FILE = Path("assets.extra") / "lstm_apps.yaml"
STAGING_PREFIX = ".staging-"
# .staging-<host>-<pid>-<token>: pid and token hold no "-", so the host is whatever comes before them.
_STAGING_NAME = re.compile(r"^\.staging-(?P<host>.+)-(?P<pid>\d+)-(?P<token>[0-9a-f]+)$")
# What rename(2) says when the target version is already there (a non-empty folder, or something not a folder).
_TAKEN = (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR)
_MAX_CLAIMS = 1000


def next_version(export_dir):
    versions = [int(p.name) for p in Path(export_dir).glob("*") if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


def write_saved_model(export_dir, trackables, endpoints, warmup_inputs, model_name="model", serving_info=None):
    """Write one version of a SavedModel.

    trackables: objects holding variables/tables the endpoints use (the Keras model, lookup tables);
    endpoints: {signature name: (tf-function-able callable, [TensorSpec named like its argument])};
    warmup_inputs: {signature name: {input name: numpy array}} (one request per signature);
    serving_info: a dict written as YAML to SERVING_INFO_FILE inside the version (read it with read_serving_info).
    Returns the path of the new version.
    """
    if serving_info is not None and not isinstance(serving_info, dict):
        raise TypeError(f"export: serving_info must be a dict, not {type(serving_info).__name__}")
    export_dir = Path(export_dir)
    if export_dir.exists() and not export_dir.is_dir():
        raise RunDirError(f"{export_dir}: exists and is not a folder; expected an export folder")
    export_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(export_dir)
    staging = _new_staging_dir(export_dir)
    try:
        archive = keras.export.ExportArchive()
        for trackable in trackables:
            archive.track(trackable)
        for name, (function, signature) in endpoints.items():
            archive.add_endpoint(name, function, input_signature=signature)
        archive.write_out(str(staging), verbose=False)
        write_warmup_requests(staging, warmup_inputs, model_name)
        if serving_info is not None:
            write_serving_info(staging, serving_info)
        check_signatures(staging, warmup_inputs)
        return claim_version(staging, export_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def claim_version(staging, export_dir, first=None):
    """Rename the folder `staging` to EXPORT_DIR/<v>, v the first free version from `first` (default next_version).

    The rename is atomic and fails when EXPORT_DIR/<v> is already there (another export claimed it between our
    look and our rename); then the next number is tried. Returns the path of the claimed version.
    """
    export_dir = Path(export_dir)
    version = next_version(export_dir) if first is None else int(first)
    for _ in range(_MAX_CLAIMS):
        final = export_dir / str(version)
        try:
            os.rename(staging, final)
            return final
        except OSError as error:  # FileExistsError included (errno EEXIST)
            if error.errno not in _TAKEN:
                raise
        version = max(version + 1, next_version(export_dir))
    raise RunDirError(f"{export_dir}: no free version after {_MAX_CLAIMS} tries; expected numbered versions only")


def remove_stale_staging(export_dir):
    """Remove the staging folders in EXPORT_DIR left by a dead writer on this host; returns the paths removed.

    Folders of a live process, of another host, or not named by this module are left alone. Each stale folder is
    first renamed to a staging name of this process, so two exports never remove the same one and, if this one is
    killed while removing it, the next export removes it.
    """
    removed = []
    host = _host()
    for path in sorted(Path(export_dir).glob(STAGING_PREFIX + "*")):
        match = _STAGING_NAME.match(path.name)
        if not match or match["host"] != host or _process_alive(int(match["pid"])):
            continue
        mine = Path(export_dir) / _staging_name()
        try:
            os.rename(path, mine)
        except OSError:  # another export is removing it, or it just went
            continue
        shutil.rmtree(mine, ignore_errors=True)
        removed.append(path)
    return removed


def _host():
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "localhost"


def _staging_name():
    return f"{STAGING_PREFIX}{_host()}-{os.getpid()}-{secrets.token_hex(4)}"


def _new_staging_dir(export_dir):
    while True:
        staging = Path(export_dir) / _staging_name()
        try:
            staging.mkdir()
            return staging
        except FileExistsError:
            continue


def _process_alive(pid):
    """Whether process `pid` exists on this host (a zombie counts as alive until its parent reaps it)."""
    if pid <= 0:
        return True  # not a writer's pid: never treat it as dead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def write_serving_info(saved_model_dir, serving_info):
    """SERVING_INFO_FILE: the dict `predict --model` needs (task name, labels, ...), as YAML."""
    path = Path(saved_model_dir) / SERVING_INFO_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(serving_info, allow_unicode=True), encoding="utf-8")


def read_serving_info(saved_model_dir):
    """The serving info dict written by write_saved_model(serving_info=...)."""
    path = Path(saved_model_dir) / SERVING_INFO_FILE
    if not path.is_file():
        raise RunDirError(f"{saved_model_dir}: no {SERVING_INFO_FILE}; expected a SavedModel version written by "
                          f"lstm-apps export")
    try:
        info = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise RunDirError(f"{path}: not valid YAML ({' '.join(str(error).split())}); expected the serving info "
                          f"written by lstm-apps export") from None
    if not isinstance(info, dict):
        raise RunDirError(f"{path}: holds a {type(info).__name__}; expected the serving info mapping written by "
                          f"lstm-apps export")
    return info


def write_warmup_requests(saved_model_dir, warmup_inputs, model_name):
    """assets.extra/tf_serving_warmup_requests: one PredictionLog per signature (TF Serving replays them at load)."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    path = Path(saved_model_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature, inputs in warmup_inputs.items():
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature))
            for input_name, value in inputs.items():
                request.inputs[input_name].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def read_warmup_requests(saved_model_dir):
    """The warmup requests back as {signature: {input: numpy array}} (used by the tests and the check)."""
    from tensorflow_serving.apis import prediction_log_pb2

    requests = {}
    for record in tf.data.TFRecordDataset(str(Path(saved_model_dir) / WARMUP_FILE)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        requests[request.model_spec.signature_name] = {
            name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
    return requests


def check_signatures(saved_model_dir, warmup_inputs):
    """Load the SavedModel back and run every signature on its warmup input; a failure aborts the export."""
    loaded = tf.saved_model.load(str(saved_model_dir))
    missing = set(warmup_inputs) - set(loaded.signatures)
    if missing:
        raise RuntimeError(f"export: signatures {sorted(missing)} missing from {saved_model_dir}")
    for name, inputs in warmup_inputs.items():
        outputs = loaded.signatures[name](**{k: tf.constant(v) for k, v in inputs.items()})
        for key, value in outputs.items():
            if value.dtype.is_floating and not np.all(np.isfinite(value.numpy())):
                raise RuntimeError(f"export: signature {name} output {key} is not finite on the warmup input")
