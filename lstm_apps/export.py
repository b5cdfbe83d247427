"""SavedModels in the TF Serving layout, written atomically, with warmup records and a signature check.

EXPORT_DIR/<version>/ appears only once complete: the model is written to a hidden folder beside it, checked by
loading it back and calling every signature on the warmup request, then renamed into place (TF Serving ignores
names that are not integers, so it never sees a half-written version).
"""
import os
import shutil
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from lstm_apps.errors import RunDirError

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"


def next_version(export_dir):
    versions = [int(p.name) for p in Path(export_dir).glob("*") if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


def write_saved_model(export_dir, trackables, endpoints, warmup_inputs, model_name="model"):
    """Write one version of a SavedModel.

    trackables: objects holding variables/tables the endpoints use (the Keras model, lookup tables);
    endpoints: {signature name: (tf-function-able callable, [TensorSpec named like its argument])};
    warmup_inputs: {signature name: {input name: numpy array}} (one request per signature).
    Returns the path of the new version.
    """
    export_dir = Path(export_dir)
    if export_dir.exists() and not export_dir.is_dir():
        raise RunDirError(f"{export_dir}: exists and is not a folder; expected an export folder")
    export_dir.mkdir(parents=True, exist_ok=True)
    version = next_version(export_dir)
    final = export_dir / str(version)
    staging = export_dir / f".staging-{version}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        archive = keras.export.ExportArchive()
        for trackable in trackables:
            archive.track(trackable)
        for name, (function, signature) in endpoints.items():
            archive.add_endpoint(name, function, input_signature=signature)
        archive.write_out(str(staging), verbose=False)
        write_warmup_requests(staging, warmup_inputs, model_name)
        check_signatures(staging, warmup_inputs)
        os.rename(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


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
