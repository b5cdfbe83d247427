"""SavedModels in the TF Serving layout, written atomically, with warmup records, serving info and a signature check.

EXPORT_DIR/<version>/ appears only once complete: everything is written to a hidden staging folder beside it
(TF Serving ignores names that are not integers), checked by loading it back and calling every signature on the
warmup request, then renamed to the next free version; if another export claimed that number first, the next one is
tried. Staging folders are named after their writer's host and pid; an export removes those whose writer is dead.

One export serves CPU and GPU servers: the endpoints are traced inside `portable_lstm_kernels()`, so every LSTM in
the graph calls the generic kernel and carries its cuDNN twin for Grappler's implementation selector
(lstm_apps/layers/portable_lstm.py), whatever machine exports; `check_lstm_kernels` proves it on the written graph.
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
from lstm_apps.layers.portable_lstm import API_IMPLEMENTS, API_PREFERRED_DEVICE, portable_lstm_kernels

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


def write_saved_model(export_dir, trackables, endpoints, warmup_inputs, model_name="model", serving_info=None,
                      portable_lstm=True):
    """Write one version of a SavedModel.

    trackables: objects holding variables/tables the endpoints use (the Keras model, lookup tables);
    endpoints: {signature name: (tf-function-able callable, [TensorSpec named like its argument])};
    warmup_inputs: {signature name: {input name: numpy array}} (one request per signature);
    serving_info: a dict written as YAML to SERVING_INFO_FILE inside the version (read it with read_serving_info);
    portable_lstm: trace the endpoints inside `portable_lstm_kernels()` (both LSTM kernels, for CPU and GPU
    servers) and check the graph with `check_lstm_kernels`; False traces only the kernel Keras picks on this
    machine (what exports did before; benchmarks/export_latency.py compares the two).
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
        with portable_lstm_kernels(portable_lstm):  # the endpoints are traced in here (write_out)
            archive = keras.export.ExportArchive()
            for trackable in trackables:
                archive.track(trackable)
            for name, (function, signature) in endpoints.items():
                archive.add_endpoint(name, function, input_signature=signature)
            archive.write_out(str(staging), verbose=False)
        if portable_lstm:
            check_lstm_kernels(staging)
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


def _function_library(saved_model_dir):
    """The FunctionDefs of a SavedModel's graph, and its top-level nodes, read from saved_model.pb."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((Path(saved_model_dir) / "saved_model.pb").read_bytes())
    functions = [f for meta_graph in saved_model.meta_graphs for f in meta_graph.graph_def.library.function]
    nodes = [node for meta_graph in saved_model.meta_graphs for node in meta_graph.graph_def.node]
    return functions, nodes


def lstm_kernel_pairs(saved_model_dir):
    """The LSTM kernel pairs in a SavedModel's function library: {interface: {"CPU": FunctionDef, "GPU": ...}},
    one entry per `api_implements` name (each traced LSTM call of an export made with `portable_lstm`), keyed by
    `api_preferred_device`."""
    pairs = {}
    for function in _function_library(saved_model_dir)[0]:
        if API_IMPLEMENTS in function.attr:
            device = function.attr[API_PREFERRED_DEVICE].s.decode()
            pairs.setdefault(function.attr[API_IMPLEMENTS].s.decode(), {}).setdefault(device, function)
    return pairs


def _arg_types(function):
    signature = function.signature
    return [arg.type for arg in signature.input_arg], [arg.type for arg in signature.output_arg]


def check_lstm_kernels(saved_model_dir):
    """Check that a SavedModel serves on CPU-only and GPU servers alike; returns the number of LSTM kernel pairs.

    A CPU-only server cannot load a graph that calls a cuDNN op: every one must sit in a function that only
    Grappler's implementation selector calls (api_preferred_device GPU). And every `api_implements` name must have
    exactly one generic (CPU) and one cuDNN (GPU) function, with the same argument and result types (Grappler
    swaps no pair in the graph as soon as one pair's signatures differ) and one result (a function with several
    can have one unused, and Grappler's function optimizer then rewrites the call before the selector sees it).
    A RuntimeError names what fails.
    """
    functions, nodes = _function_library(saved_model_dir)
    stray = ["<the top-level graph>"] if any(node.op.startswith("CudnnRNN") for node in nodes) else []
    stray += sorted(f.signature.name for f in functions if any(node.op.startswith("CudnnRNN") for node in f.node_def)
                    and f.attr[API_PREFERRED_DEVICE].s.decode() != "GPU")
    if stray:
        raise RuntimeError(f"export: {', '.join(stray)} in {saved_model_dir} call(s) the cuDNN kernel directly, so a "
                           f"CPU-only server cannot load it; expected every LSTM traced inside "
                           f"lstm_apps.layers.portable_lstm.portable_lstm_kernels()")
    pairs = lstm_kernel_pairs(saved_model_dir)
    for interface, pair in sorted(pairs.items()):
        if sorted(pair) != ["CPU", "GPU"]:
            raise RuntimeError(f"export: LSTM kernels {interface} in {saved_model_dir} are for {sorted(pair)}; "
                               f"expected one CPU and one GPU function")
        cpu, gpu = _arg_types(pair["CPU"]), _arg_types(pair["GPU"])
        if cpu != gpu or len(cpu[1]) != 1:
            raise RuntimeError(f"export: LSTM kernels {interface} in {saved_model_dir} have signatures {cpu} (CPU) "
                               f"and {gpu} (GPU); expected the same, with one result, or a GPU server never "
                               f"swaps them")
    return len(pairs)
