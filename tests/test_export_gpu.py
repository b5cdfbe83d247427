"""One export for CPU and GPU servers: every LSTM carries the generic and the cuDNN kernel (Grappler's selector).

No GPU runs here. What a CPU can show is tested: exports traced as if a GPU were present (Keras's TF backend made to
believe one is, as in tests/test_cudnn.py) hold `CudnnRNNV3` inside `api_implements` functions only, load in a fresh
process under `tf.saved_model.load` and `saved_model_cli run` (the Session loader TF Serving also uses) and answer
like the Keras model (floats within FLOAT_TOLERANCE, strings and ints equal); without the selector the same export
fails on CPU; Grappler, given a virtual GPU device, swaps every generic call for its cuDNN twin; the twin is the graph
Keras traces on a GPU, op for op. Unmeasured here: the twin running on a real GPU.

The module is imported by its own subprocesses (`simulated_gpu`), so it keeps its helpers at the top level.
"""
import contextlib
import hashlib
import importlib
import itertools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from lstm_apps import export
from lstm_apps.layers import LSTMStack
from lstm_apps.layers.portable_lstm import API_IMPLEMENTS, API_PREFERRED_DEVICE, LSTM, cudnn_lstm, \
    portable_lstm_kernels

TESTS_DIR = Path(__file__).resolve().parent
REPO = TESTS_DIR.parent
DATA = TESTS_DIR / "data"
PINNED_KERAS = "3.15."  # simulated_gpu and the cuDNN canary read Keras internals of this minor version
FLOAT_TOLERANCE = 1e-5  # absolute and relative, a loaded export against the Keras model (every difference seen: 0)
SUBPROCESS_TIMEOUT = 900  # seconds: a subprocess imports TensorFlow; a training run of a tiny model takes minutes
SAVED_MODEL_CLI = Path(sys.executable).with_name("saved_model_cli")


def keras_rnn_backend():
    assert keras.version().startswith(PINNED_KERAS), (
        f"these tests use Keras {PINNED_KERAS}x internals (keras/src/backend/tensorflow/rnn.py: _is_gpu_available, "
        f"_cudnn_lstm); re-check them for Keras {keras.version()} and update PINNED_KERAS")
    return importlib.import_module("keras.src.backend.tensorflow.rnn")


@contextlib.contextmanager
def simulated_gpu():
    """Keras's TF backend believes a GPU is present: LSTMs traced here take Keras's cuDNN path (`CudnnRNNV3`)."""
    rnn = keras_rnn_backend()
    original = rnn._is_gpu_available
    rnn._is_gpu_available = lambda: True
    try:
        yield
    finally:
        rnn._is_gpu_available = original


def python(code, *args, timeout=SUBPROCESS_TIMEOUT):
    """Run `code` in a fresh CPU-only Python process, this module importable as `test_export_gpu`."""
    prelude = f"import sys; sys.path.insert(0, {str(TESTS_DIR)!r}); sys.path.insert(0, {str(REPO)!r})\n"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, "-c", prelude + code, *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=timeout)


def saved_model_cli(saved_model_dir, signature, inputs_npz, names, out_dir, imports=()):
    """`saved_model_cli run` on one signature, inputs from an .npz, outputs written as OUT_DIR/<key>.npy.

    With `imports` (modules registering ops, e.g. tensorflow_text) the same CLI main runs after importing them."""
    arguments = ["run", "--dir", str(saved_model_dir), "--tag_set", "serve", "--signature_def", signature,
                 "--inputs", ";".join(f"{name}={inputs_npz}[{name}]" for name in names), "--outdir", str(out_dir)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    if not imports:
        command = [str(SAVED_MODEL_CLI), *arguments]
    else:
        code = ("import importlib, json, sys\n[importlib.import_module(m) for m in json.loads(sys.argv[1])]\n"
                "from tensorflow.python.tools.saved_model_cli import main\n"
                "sys.argv = ['saved_model_cli', *sys.argv[2:]]\nsys.exit(main())")
        command = [sys.executable, "-c", code, json.dumps(list(imports)), *arguments]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)


def read_cli_outputs(out_dir):
    return {path.stem: np.load(path, allow_pickle=True) for path in Path(out_dir).glob("*.npy")}


def assert_same_answers(actual, expected, what):
    """Floats within FLOAT_TOLERANCE, everything else equal; prints the largest float difference (pytest -s)."""
    assert sorted(actual) == sorted(expected), what
    largest = 0.0
    for key, value in expected.items():
        value, got = np.asarray(value), np.asarray(actual[key])
        assert got.shape == value.shape, f"{what}: {key} shape {got.shape} != {value.shape}"
        if value.dtype.kind == "f":
            np.testing.assert_allclose(got, value, rtol=FLOAT_TOLERANCE, atol=FLOAT_TOLERANCE, err_msg=f"{what}: {key}")
            largest = max(largest, float(np.max(np.abs(got - value), initial=0.0)))
        else:
            assert got.tolist() == value.tolist(), f"{what}: {key}"
    print(f"{what}: same answers, largest float difference {largest:.3g}")


# Runs every case of a list in a fresh process: loads each SavedModel once, calls the signature `calls` times on
# the inputs (a stateful model changes between calls) and saves the outputs of the last call.
FRESH_LOAD = textwrap.dedent("""
    import importlib, json, sys
    import numpy as np
    cases = json.loads(open(sys.argv[1]).read())
    for module in json.loads(sys.argv[2]):
        importlib.import_module(module)
    import tensorflow as tf
    loaded = {}
    for case in cases:
        if case["dir"] not in loaded:
            loaded[case["dir"]] = tf.saved_model.load(case["dir"])
        function = loaded[case["dir"]].signatures[case["signature"]]
        inputs = np.load(case["inputs"], allow_pickle=True)
        for _ in range(case.get("calls", 1)):
            outputs = function(**{name: tf.constant(inputs[name]) for name in inputs.files})
        np.savez(case["outputs"], **{key: value.numpy() for key, value in outputs.items()})
    print("answered", len(cases))
""")


def load_in_fresh_process(cases, work_dir, imports=()):
    """cases: dicts with dir, signature, inputs (.npz), outputs (.npz to write), optional calls."""
    listing = Path(work_dir) / "cases.json"
    listing.write_text(json.dumps([{k: str(v) if isinstance(v, Path) else v for k, v in c.items()} for c in cases]))
    result = python(FRESH_LOAD, listing, json.dumps(list(imports)))
    return result


def save_inputs(path, inputs):
    np.savez(path, **{name: np.asarray(value) for name, value in inputs.items()})
    return path


# ------------------------------------------------------------------------------------------ the saved graph
def saved_graph(saved_model_dir):
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((Path(saved_model_dir) / "saved_model.pb").read_bytes())
    (meta_graph,) = saved_model.meta_graphs
    return meta_graph


def library(saved_model_dir):
    return {f.signature.name: f for f in saved_graph(saved_model_dir).graph_def.library.function}


def implementations(saved_model_dir):
    """{function name: api_preferred_device} of every function with an `api_implements` attribute."""
    return {name: f.attr[API_PREFERRED_DEVICE].s.decode() for name, f in library(saved_model_dir).items()
            if API_IMPLEMENTS in f.attr}


def called_functions(node):
    for value in node.attr.values():
        if value.HasField("func"):
            yield value.func.name
        yield from (f.name for f in value.list.func)


def implementations_reached(saved_model_dir):
    """{signature: [preferred device of each implementation its graph calls]}, walking from the signature's outputs
    through every function call (PartitionedCall, While and If bodies, ...); the cuDNN twins are never called."""
    meta_graph, functions = saved_graph(saved_model_dir), library(saved_model_dir)
    impl = implementations(saved_model_dir)
    top = {node.name: node for node in meta_graph.graph_def.node}
    reached = {}
    for name, signature in meta_graph.signature_def.items():
        if name.startswith("__"):  # __saved_model_init_op: initialises tables, no model
            continue
        stack = [f for output in signature.outputs.values() for f in called_functions(top[output.name.split(":")[0]])]
        visited, found = set(), []
        while stack:
            function = stack.pop()
            if function in visited or function not in functions:
                continue
            visited.add(function)
            if function in impl:
                found.append(impl[function])
            stack.extend(f for node in functions[function].node_def for f in called_functions(node))
        reached[name] = found
    return reached


def assert_both_kernels(saved_model_dir, pairs=None):
    """The export holds `pairs` generic/cuDNN pairs (or at least one per signature), the cuDNN op only in the GPU
    functions, and every signature calls generic kernels only."""
    functions, impl = library(saved_model_dir), implementations(saved_model_dir)
    cudnn = {name for name, f in functions.items() if any(node.op == "CudnnRNNV3" for node in f.node_def)}
    assert cudnn and cudnn == {name for name, device in impl.items() if device == "GPU"}, (cudnn, impl)
    assert not any(node.op.startswith("CudnnRNN") for node in saved_graph(saved_model_dir).graph_def.node)
    count = export.check_lstm_kernels(saved_model_dir)
    assert sorted(impl.values()) == ["CPU"] * count + ["GPU"] * count
    if pairs is not None:
        assert count == pairs
    for signature, devices in implementations_reached(saved_model_dir).items():
        assert devices and set(devices) == {"CPU"}, f"{signature} calls {devices}"
    return count


def implementations_called(graph_def):
    """The preferred device of every `api_implements` function the nodes of `graph_def` call, directly or through
    the functions they call (each function counted once; implementations are not entered)."""
    functions = {f.signature.name: f for f in graph_def.library.function}
    stack = [name for node in graph_def.node for name in called_functions(node)]
    visited, found = set(), []
    while stack:
        name = stack.pop()
        if name in visited or name not in functions:
            continue
        visited.add(name)
        if API_IMPLEMENTS in functions[name].attr:
            found.append(functions[name].attr[API_PREFERRED_DEVICE].s.decode())
        else:
            stack.extend(called for node in functions[name].node_def for called in called_functions(node))
    return found


def run_grappler(graph_def, fetch, device_type):
    """Grappler's default optimizers on `graph_def` with every node placed on `device_type` of a virtual cluster
    holding that one device (as a runtime hands it over after placement). Uses TensorFlow's Python wrappers of
    Grappler (tensorflow.python.grappler: private API, used by these tests only)."""
    from tensorflow.core.protobuf import config_pb2, device_properties_pb2, meta_graph_pb2
    from tensorflow.python.grappler import cluster as grappler_cluster
    from tensorflow.python.grappler import tf_optimizer

    device = f"/job:localhost/replica:0/task:0/device:{device_type}:0"
    graph_def = tf.compat.v1.GraphDef.FromString(graph_def.SerializeToString())
    for node in graph_def.node:
        node.device = device
        if node.op == "Placeholder" and "shape" not in node.attr:  # resource arguments: handles are scalars
            node.attr["shape"].shape.SetInParent()  # (Grappler refuses a placeholder without a shape)
    meta_graph = meta_graph_pb2.MetaGraphDef(graph_def=graph_def)
    meta_graph.collection_def["train_op"].node_list.value.extend(fetch)
    config = config_pb2.ConfigProto()
    config.graph_options.rewrite_options.min_graph_nodes = -1
    cluster = grappler_cluster.Cluster(devices=[device_properties_pb2.NamedDevice(
        name=device, properties=device_properties_pb2.DeviceProperties(type=device_type))])
    return tf_optimizer.OptimizeGraph(config, meta_graph, cluster=cluster)


def grappler_choices_in_functions(saved_model_dir, device_type):
    """What `tf.saved_model.load` does: each function that calls LSTM kernels is instantiated, placed, then
    optimized on its own. Returns the preferred devices of the kernels the optimized functions call."""
    from tensorflow.python.framework import function_def_to_graph

    graph_library = saved_graph(saved_model_dir).graph_def.library
    impl = implementations(saved_model_dir)
    choices = []
    for function in graph_library.function:
        if not any(impl.get(name) == "CPU" for node in function.node_def for name in called_functions(node)):
            continue
        with tf.Graph().as_default():  # function_def_to_graph_def looks the called functions up in the graph
            tf.graph_util.import_graph_def(tf.compat.v1.GraphDef(library=graph_library), name="")
            graph_def, _ = function_def_to_graph.function_def_to_graph_def(function)
        graph_def.library.CopyFrom(graph_library)
        fetch = sorted({value.split(":")[0] for value in [*function.ret.values(), *function.control_ret.values()]})
        choices += implementations_called(run_grappler(graph_def, fetch, device_type))
    return choices


def grappler_choices_in_session(saved_model_dir, signature, device_type):
    """What a Session does (TF Serving, `saved_model_cli run`): the whole graph is placed, then optimized for the
    signature's outputs, the signature function inlined. Returns the preferred devices of the kernels called."""
    meta_graph = saved_graph(saved_model_dir)
    fetch = [output.name.split(":")[0] for output in meta_graph.signature_def[signature].outputs.values()]
    return implementations_called(run_grappler(meta_graph.graph_def, fetch, device_type))


def assert_grappler_swaps_on_gpu_only(saved_model_dir, pairs=None):
    """On a GPU device every LSTM call is swapped for its cuDNN twin, in both runtimes; on a CPU none is."""
    signatures = [name for name in saved_graph(saved_model_dir).signature_def if not name.startswith("__")]
    choices = {"functions": lambda device: grappler_choices_in_functions(saved_model_dir, device)}
    for signature in signatures:
        choices[f"session {signature}"] = lambda device, s=signature: grappler_choices_in_session(
            saved_model_dir, s, device)
    for where, choose in choices.items():
        on_gpu, on_cpu = choose("GPU"), choose("CPU")
        assert on_gpu and set(on_gpu) == {"GPU"}, f"{where}: on a GPU the calls go to {on_gpu}"
        assert set(on_cpu) == {"CPU"} and len(on_cpu) == len(on_gpu), f"{where}: on a CPU {on_cpu}"
        if pairs is not None and where == "functions":
            assert len(on_gpu) == pairs, where
        print(f"{saved_model_dir} {where}: Grappler swaps {len(on_gpu)} of {len(on_gpu)} LSTM calls on a GPU, 0 on a CPU")


# ------------------------------------------------------------------------------------------ unit models
UNIT = {  # name: (LSTMStack arguments, has a mask, has initial states, LSTM calls = generic/cuDNN pairs)
    "masked-bidirectional-sequences": (dict(units=6, num_layers=2, bidirectional=True, return_sequences=True),
                                       True, False, 4),
    "decoder-with-states": (dict(units=5, num_layers=2, return_sequences=True, return_state=True), False, True, 2),
    "masked-last-output": (dict(units=4), True, False, 1),
    "masked-bidirectional-states": (dict(units=4, bidirectional=True, return_state=True), True, True, 2),
}
FEATURES, LENGTHS = 3, (5, 3, 1)  # a batch of 3 right-padded rows; and a batch of 1


def unit_model(name):
    arguments, masked, with_states, _ = UNIT[name]
    keras.utils.set_random_seed(sum(map(ord, name)))
    stack = LSTMStack(**arguments, name="stack")
    inputs = {"x": keras.Input((None, FEATURES), name="x")}
    if masked:
        inputs["mask"] = keras.Input((None,), dtype="bool", name="mask")
    states = []
    if with_states:
        widths = [arguments["units"]] * (arguments.get("num_layers", 1) * stack.states_per_layer)
        states = [keras.Input((width,), name=f"state_{index}") for index, width in enumerate(widths)]
        inputs.update({f"state_{index}": state for index, state in enumerate(states)})
    outputs = stack(inputs["x"], mask=inputs.get("mask"), initial_state=states or None)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    return keras.Model(inputs, {f"out_{index}": output for index, output in enumerate(outputs)}, name=name)


def unit_inputs(model, batch):
    rng = np.random.default_rng(len(batch))
    lengths = np.array(batch)
    inputs = {"x": rng.normal(size=(len(batch), max(batch), FEATURES)).astype("float32")}
    names = [tensor.name for tensor in model.inputs]
    if "mask" in names:
        inputs["mask"] = np.arange(max(batch))[None, :] < lengths[:, None]
    for name in names:
        if name.startswith("state_"):
            inputs[name] = rng.normal(size=(len(batch), model.get_layer("stack").units)).astype("float32")
    return inputs


def unit_endpoints(model):
    specs = [tf.TensorSpec(tensor.shape, tensor.dtype, name=tensor.name) for tensor in model.inputs]

    def serve(*args):
        return model(dict(zip([spec.name for spec in specs], args)), training=False)

    return {"serving_default": (serve, specs)}


def keras_answers(model, inputs):
    return {key: np.asarray(value) for key, value in model(inputs, training=False).items()}


def write_unit_export(model, export_dir, portable_lstm=True):
    warmup = {"serving_default": unit_inputs(model, (2, 1))}
    return export.write_saved_model(export_dir, [model], unit_endpoints(model), warmup, model_name="unit",
                                    portable_lstm=portable_lstm)


@pytest.fixture(scope="module")
def unit_exports(tmp_path_factory):
    """Every UNIT model exported with the simulated GPU trace, with inputs and the Keras model's answers."""
    root = tmp_path_factory.mktemp("unit_exports")
    exports = {}
    for name in UNIT:
        model = unit_model(name)
        with simulated_gpu():
            version = write_unit_export(model, root / name)
        cases = []
        for batch in (LENGTHS, (4,)):
            inputs = unit_inputs(model, batch)
            label = f"batch{len(batch)}"
            cases.append({"dir": version, "signature": "serving_default", "label": label,
                          "inputs": save_inputs(root / f"{name}-{label}-in.npz", inputs),
                          "outputs": root / f"{name}-{label}-out.npz", "expected": keras_answers(model, inputs)})
        exports[name] = (version, cases)
    return exports


@pytest.fixture(scope="module")
def unit_loaded(unit_exports, tmp_path_factory):
    """The unit exports' answers from one fresh process (tf.saved_model.load)."""
    cases = [{k: v for k, v in case.items() if k not in ("expected", "label")}
             for _, cases in unit_exports.values() for case in cases]
    result = load_in_fresh_process(cases, tmp_path_factory.mktemp("unit_loaded"))
    assert result.returncode == 0, result.stderr[-3000:]
    return result


# ------------------------------------------------------------------------------------------ unit tests
@pytest.mark.parametrize("name", UNIT)
def test_gpu_traced_export_holds_both_kernels_behind_the_selector(unit_exports, name):
    version, _ = unit_exports[name]
    assert_both_kernels(version, pairs=UNIT[name][3])
    for function in library(version).values():
        if function.attr[API_PREFERRED_DEVICE].s == b"GPU":
            assert function.attr[API_IMPLEMENTS].s.decode().startswith("lstm_apps_lstm_")


@pytest.mark.parametrize("name", UNIT)
def test_gpu_traced_export_answers_like_keras_under_tf_saved_model_load(unit_exports, unit_loaded, name):
    for case in unit_exports[name][1]:
        served = dict(np.load(case["outputs"]))
        assert_same_answers(served, case["expected"], f"{name} {case['label']}")


@pytest.mark.parametrize("name", UNIT)
def test_gpu_traced_export_answers_like_keras_under_saved_model_cli(unit_exports, tmp_path, name):
    version, cases = unit_exports[name]
    for case in cases[:1]:  # the batch of 3 (each run is a process: the batch of 1 is left to the test above)
        names = list(np.load(case["inputs"]).files)
        result = saved_model_cli(version, "serving_default", case["inputs"], names, tmp_path / case["label"])
        assert result.returncode == 0, result.stderr[-3000:]
        assert_same_answers(read_cli_outputs(tmp_path / case["label"]), case["expected"], f"{name} {case['label']}")


@pytest.mark.parametrize("name", UNIT)
def test_grappler_swaps_in_the_cudnn_twin_on_a_gpu_device_only(unit_exports, name):
    """Grappler on a virtual GPU, as each loader's runtime runs it: every generic call becomes its cuDNN twin."""
    version, _ = unit_exports[name]
    assert_grappler_swaps_on_gpu_only(version, pairs=UNIT[name][3])


def test_without_the_selector_a_gpu_traced_export_fails_on_cpu(tmp_path):
    """The old behaviour, to show these tests can fail: Keras traces CudnnRNNV3 straight into the graph."""
    model = unit_model("masked-bidirectional-sequences")
    endpoints = unit_endpoints(model)
    with simulated_gpu(), portable_lstm_kernels(False):
        archive = keras.export.ExportArchive()  # write_saved_model would refuse it (below): write it directly
        archive.track(model)
        archive.add_endpoint("serving_default", endpoints["serving_default"][0],
                             input_signature=endpoints["serving_default"][1])
        archive.write_out(str(tmp_path / "old"), verbose=False)
    assert implementations(tmp_path / "old") == {}
    with pytest.raises(RuntimeError, match="call\\(s\\) the cuDNN kernel directly"):
        export.check_lstm_kernels(tmp_path / "old")
    inputs = save_inputs(tmp_path / "in.npz", unit_inputs(model, LENGTHS))
    result = load_in_fresh_process([{"dir": tmp_path / "old", "signature": "serving_default", "inputs": inputs,
                                     "outputs": tmp_path / "out.npz"}], tmp_path)
    assert result.returncode != 0 and "CudnnRNNV3" in result.stderr
    result = saved_model_cli(tmp_path / "old", "serving_default", inputs, ["x", "mask"], tmp_path / "cli")
    assert result.returncode != 0 and "CudnnRNNV3" in result.stderr
    with simulated_gpu(), pytest.raises(Exception, match="CudnnRNNV3"):  # the export's own check catches it too
        write_unit_export(model, tmp_path / "refused", portable_lstm=False)
    assert not list((tmp_path / "refused").glob("[0-9]*"))


def hand_made_pair(tmp_path, name, cpu_outputs=1, gpu_outputs=1, gpu_dtype=tf.float32, with_gpu=True):
    """A SavedModel whose serving function calls a CPU `api_implements` function and registers a GPU one."""
    interface = f"test_{name}"

    def implementation(device, outputs, dtype):
        def body(x):
            return tuple(tf.cast(x, dtype) * (index + 1) for index in range(outputs))
        return tf.function(body, autograph=False, experimental_attributes={API_IMPLEMENTS: interface,
                                                                           API_PREFERRED_DEVICE: device})

    spec = tf.TensorSpec([None], tf.float32)

    @tf.function(input_signature=[spec], autograph=False)
    def serve(x):
        if with_gpu:
            implementation("GPU", gpu_outputs, gpu_dtype).get_concrete_function(spec).add_to_graph()
        return {"y": implementation("CPU", cpu_outputs, tf.float32)(x)[0]}

    module = tf.Module()
    module.serve = serve
    tf.saved_model.save(module, str(tmp_path / name), signatures={"serving_default": serve})
    return tmp_path / name


def test_the_export_check_refuses_pairs_a_gpu_server_would_not_swap(tmp_path):
    assert export.check_lstm_kernels(hand_made_pair(tmp_path, "good")) == 1
    for name, arguments, message in (("two-results", dict(cpu_outputs=2, gpu_outputs=2), "with one result"),
                                     ("other-types", dict(gpu_dtype=tf.float64), "expected the same"),
                                     ("cpu-only", dict(with_gpu=False), "expected one CPU and one GPU")):
        with pytest.raises(RuntimeError, match=message):
            export.check_lstm_kernels(hand_made_pair(tmp_path, name, **arguments))


def test_an_export_made_on_cpu_carries_the_cudnn_twin_too(unit_exports, tmp_path):
    for name in ("masked-bidirectional-sequences", "decoder-with-states"):
        version = write_unit_export(unit_model(name), tmp_path / name)
        assert_both_kernels(version, pairs=UNIT[name][3])
        gpu_traced, _ = unit_exports[name]
        assert sorted(implementations(version).values()) == sorted(implementations(gpu_traced).values())


def test_outside_the_context_the_layer_is_keras_lstm():
    """Training, evaluate and predict --run-dir trace what Keras picks (test_cudnn.py checks that is cuDNN)."""
    layer = LSTM(4, return_sequences=True)
    spec = tf.TensorSpec([None, None, 3], tf.float32)

    def traced_ops(training, portable):
        function = tf.function(lambda x: layer(x, training=training), autograph=False)
        with portable_lstm_kernels(portable):
            graph = function.get_concrete_function(spec).graph.as_graph_def()
        ops = [n.op for n in graph.node] + [n.op for f in graph.library.function for n in f.node_def]
        return ops, [f for f in graph.library.function if API_IMPLEMENTS in f.attr]

    with simulated_gpu():
        for training, portable in ((False, False), (True, False), (True, True)):
            ops, selected = traced_ops(training, portable)
            assert "CudnnRNNV3" in ops and not selected, (training, portable)
        ops, selected = traced_ops(False, True)
        assert len(selected) == 2 and "CudnnRNNV3" in ops
    ops, selected = traced_ops(False, False)
    assert "CudnnRNNV3" not in ops and not selected
    assert not layer.uses_kernel_selection(training=True)
    assert not LSTM(4, recurrent_dropout=0.1).uses_kernel_selection()
    assert not LSTM(4, use_cudnn=False).uses_kernel_selection()
    assert not LSTM(4, activation="relu").uses_kernel_selection()


STATEFUL_BATCH = 2


@pytest.mark.parametrize("name", [*UNIT, "stateful"])
def test_traced_with_both_kernels_the_layers_answer_like_keras(name):
    """In process, every variant (masks, Bidirectional's go_backwards, sequences or last output, initial states,
    stateful, batch of 1): the function traced inside portable_lstm_kernels() equals the Keras layers run eagerly."""
    if name == "stateful":
        keras.utils.set_random_seed(7)
        x = keras.Input((None, FEATURES), batch_size=STATEFUL_BATCH, name="x")
        model = keras.Model({"x": x}, {"out_0": LSTMStack(3, stateful=True, return_sequences=True, name="stack")(x)})
        cases = [{"x": np.random.default_rng(index).normal(size=(STATEFUL_BATCH, 4, FEATURES)).astype("float32")}
                 for index in range(2)]
    else:
        model = unit_model(name)
        cases = [unit_inputs(model, batch) for batch in (LENGTHS, (4,), (1,))]
    specs = {t.name: tf.TensorSpec(t.shape, t.dtype, name=t.name) for t in model.inputs}
    function = tf.function(lambda inputs: model(inputs, training=False), autograph=False)
    with portable_lstm_kernels():
        concrete = function.get_concrete_function(specs)
    pairs = [f for f in concrete.graph.as_graph_def().library.function if API_IMPLEMENTS in f.attr]
    assert len(pairs) == 2 * (UNIT[name][3] if name in UNIT else 1)
    stack = model.get_layer("stack")
    if stack.stateful:
        stack.reset_state()
        expected = [keras_answers(model, inputs) for inputs in cases]  # the second call starts from the first
        stack.reset_state()
    else:
        expected = [keras_answers(model, inputs) for inputs in cases]
    for inputs, answers in zip(cases, expected):
        traced = {key: value.numpy() for key, value in concrete({k: tf.constant(v) for k, v in inputs.items()}).items()}
        assert_same_answers(traced, answers, name)


# ------------------------------------------------------------------------------------------ the cuDNN twin
def structure(concrete):
    """A hash of the graph behind each output of a concrete function (and of its control outputs): op types, attrs
    and inputs, recursively; node names and ops no output depends on are left out, arguments are their index."""
    arguments = {tensor.op.name: index for index, tensor in enumerate(concrete.graph.inputs)}
    memo = {}

    def node(op):
        if op.name not in memo:
            if op.type == "Placeholder":
                key = f"arg{arguments[op.name]}"
            else:
                attrs = sorted((k, v.SerializeToString(deterministic=True)) for k, v in op.node_def.attr.items()
                               if not k.startswith("_"))
                key = repr((op.type, attrs, [(node(t.op), t.value_index) for t in op.inputs],
                            sorted(node(c) for c in op.control_inputs)))
            memo[op.name] = hashlib.sha1(key.encode()).hexdigest()
        return memo[op.name]

    return ([(node(t.op), t.value_index) for t in concrete.outputs],
            sorted(node(op) for op in concrete.graph.control_outputs))


@pytest.mark.parametrize("masked,go_backwards,return_sequences", list(itertools.product((False, True), repeat=3)))
def test_cudnn_twin_is_the_graph_keras_traces_on_a_gpu(masked, go_backwards, return_sequences):
    """Canary for Keras upgrades: the twin (public TF ops) against Keras's own `_cudnn_lstm`, op for op."""
    rnn = keras_rnn_backend()
    specs = [tf.TensorSpec([None, None, 3]), tf.TensorSpec([None, 4]), tf.TensorSpec([None, 4]),
             tf.TensorSpec([3, 16]), tf.TensorSpec([4, 16]), tf.TensorSpec([16])]
    if masked:
        specs.append(tf.TensorSpec([None, None], tf.bool))

    def keras_cudnn(*args):
        mask = args[6] if masked else None
        last_output, outputs, (h, c) = rnn._cudnn_lstm(*args[:6], mask, False, go_backwards, return_sequences)
        return last_output, outputs, h, c

    def twin(*args):
        return cudnn_lstm(*args[:6], args[6] if masked else None, go_backwards=go_backwards,
                          return_sequences=return_sequences)

    ours = structure(tf.function(twin, autograph=False).get_concrete_function(*specs))
    theirs = structure(tf.function(keras_cudnn, autograph=False).get_concrete_function(*specs))
    assert ours == theirs
    assert structure(tf.function(twin, autograph=False).get_concrete_function(*specs)) == ours  # deterministic
    if masked:  # the check can fail: the other direction is another graph
        other = tf.function(lambda *a: cudnn_lstm(*a[:6], a[6], go_backwards=not go_backwards,
                                                  return_sequences=return_sequences), autograph=False)
        assert structure(other.get_concrete_function(*specs)) != theirs


# ------------------------------------------------------------------------------------------ earlier models
def test_models_saved_before_this_class_load_with_equal_outputs():
    """tests/data/lstm_stack_v1.* were written by the LSTMStack of plain keras.layers.LSTM layers (see
    make_lstm_stack_fixture.py): weights are saved under the class name, which stays `LSTM`."""
    expected = np.load(DATA / "lstm_stack_v1.npz")
    model = keras.saving.load_model(DATA / "lstm_stack_v1.keras")
    layers = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.LSTM)]
    assert len(layers) == 6 and all(type(layer) is LSTM for layer in layers)
    weights = model.get_weights()
    assert len(weights) == len([key for key in expected.files if key.startswith("weight_")])
    for index, value in enumerate(weights):
        np.testing.assert_array_equal(value, expected[f"weight_{index}"])
    outputs = model([expected["inputs"], expected["mask"]])
    for index, value in enumerate(outputs):
        np.testing.assert_allclose(np.asarray(value), expected[f"output_{index}"], rtol=0, atol=1e-6)
    model.set_weights([np.zeros_like(w) for w in weights])
    model.load_weights(DATA / "lstm_stack_v1.weights.h5")  # a run's backups and best weights
    for index, value in enumerate(model.get_weights()):
        np.testing.assert_array_equal(value, expected[f"weight_{index}"])
    stateful = keras.saving.load_model(DATA / "lstm_stack_v1_stateful.keras")
    assert type(stateful.get_layer("stateful").recurrent_layers[0]) is LSTM
    for index in range(2):
        np.testing.assert_allclose(np.asarray(stateful(expected["inputs"][:2])), expected[f"stateful_output_{index}"],
                                   rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------------ every task
EXPORT_WITH_SIMULATED_GPU = textwrap.dedent("""
    import sys
    from test_export_gpu import simulated_gpu
    from lstm_apps.cli import main
    with simulated_gpu():
        sys.exit(main(sys.argv[1:]))
""")
TRAIN_WITH_CLI = "import sys\nfrom lstm_apps.cli import main\nsys.exit(main(sys.argv[1:]))"

TASKS = {  # name: (task, data, --set overrides of the smallest sensible run)
    "keywords": ("keywords", "fsdd", ["train.epochs=1", "model.units=16"]),
    "language-model": ("language-model", "ptb", ["train.epochs=1", "data.train_tokens=20000", "model.units=32",
                                                  "model.embedding_dim=32"]),
    "translation": ("translation", "multi30k/raw", [
        "train.epochs=1", "data.train_pairs=1000", "tokenizer.source_vocab=300", "tokenizer.target_vocab=300",
        "model.units=32", "model.embedding_dim=32", "decode.beam_size=3"]),
    "captioning-sa-lstm": ("captioning", "generated", ["train.epochs=1", "model.units=16", "model.embedding_dim=8",
                                                       "data.num_frames=4"]),
    "captioning-s2vt": ("captioning", "generated", ["train.epochs=1", "model.name=s2vt", "model.units=16",
                                                    "model.embedding_dim=8", "data.num_frames=4"]),
}


def task_inputs(name, data_dir, info):
    """{signature: inputs} beyond the warmup requests: real clips and sentences, batches of 2-3."""
    if name == "keywords":
        from lstm_apps.inputs.audio import read_audio

        clips = [data_dir / "recordings" / f for f in ("3_lucas_0.wav", "7_theo_12.wav")]
        waves = [read_audio(clip, info["sample_rate"]) for clip in clips]
        batch = np.zeros((len(waves), max(map(len, waves))), np.float32)
        for row, wave in enumerate(waves):
            batch[row, :len(wave)] = wave
        return {"serving_default": {"waveform": batch},
                "serving_wav": {"wav": np.array([clip.read_bytes() for clip in clips], object)}}
    if name == "language-model":
        prompts = np.array([b"the company said", b"stocks", b"in new york the dollar"], object)
        return {"serving_default": {"prompt": prompts, "max_tokens": np.array([8, 8, 8], np.int32),
                                    "temperature": np.zeros(3, np.float32)},
                "score": {"text": np.array([b"the company said it expects higher sales", b"shares fell"], object)}}
    if name == "translation":
        return {"serving_default": {"text": np.array([b"A dog runs on the grass.",
                                                      b"Two men are playing soccer in a park."], object)}}
    rng = np.random.default_rng(0)
    inputs = {"serving_default": {"features": rng.normal(size=(2, info["num_frames"], info["feature_dim"])).astype(
        np.float32)}}
    if "frames" in info["signatures"]:
        inputs["frames"] = {"frames": rng.integers(0, 256, size=(2, info["num_frames"], *info["frame_shape"]),
                                                   dtype=np.uint8)}
    return inputs


def run_cli(code, *args):
    result = python(code, *args)
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed:\n{result.stderr[-4000:]}"
    return result


@pytest.mark.slow
@pytest.mark.parametrize("name", TASKS)
def test_every_task_gpu_traced_export_answers_on_cpu_under_both_loaders(name, tmp_path):
    from conftest import shared

    from lstm_apps import runner
    from lstm_apps.run_dir import RunDir
    from lstm_apps.tasks import get_task

    task_name, data, overrides = TASKS[name]
    if data == "generated":
        from pipelines.captioning import synthetic

        data_dir = tmp_path / "clips"
        synthetic.generate(data_dir, clips_per_combination=2)
    else:
        data_dir = shared(data.split("/")[0]) / "/".join(data.split("/")[1:])
    run_dir, export_dir = tmp_path / "run", tmp_path / "export"
    run_cli(TRAIN_WITH_CLI, task_name, "train", "--data-dir", data_dir, "--run-dir", run_dir,
            *[x for o in overrides for x in ("--set", o)])
    run_cli(EXPORT_WITH_SIMULATED_GPU, task_name, "export", "--run-dir", run_dir, "--export-dir", export_dir)
    version = export_dir / "1"
    task = get_task(task_name)
    info = export.read_serving_info(version)
    assert_both_kernels(version)

    # the Keras model's answers: the run dir's inference module, as `lstm-apps TASK predict --run-dir` calls it
    module = task.inference(RunDir(run_dir).config(task), RunDir(run_dir), {})
    functions = runner.signature_functions(module)
    cases = []
    for label, requests in (("warmup", export.read_warmup_requests(version)),
                            ("batch", task_inputs(name, data_dir, info))):
        for signature, inputs in requests.items():
            expected = {k: v.numpy() for k, v in functions[signature](
                **{n: tf.constant(v) for n, v in inputs.items()}).items()}
            cases.append({"dir": version, "signature": signature, "label": f"{signature} {label}",
                          "inputs": save_inputs(tmp_path / f"{signature}-{label}-in.npz", inputs),
                          "outputs": tmp_path / f"{signature}-{label}-out.npz", "expected": expected})
    assert {case["signature"] for case in cases} == set(functions) == set(implementations_reached(version))

    if task.saved_model_imports:  # the ops they register, for Grappler's graph import
        for module_name in task.saved_model_imports:
            importlib.import_module(module_name)
    assert_grappler_swaps_on_gpu_only(version)

    result = load_in_fresh_process([{k: v for k, v in c.items() if k not in ("expected", "label")} for c in cases],
                                   tmp_path, imports=task.saved_model_imports)
    assert result.returncode == 0, result.stderr[-4000:]
    for case in cases:
        assert_same_answers(dict(np.load(case["outputs"], allow_pickle=True)), case["expected"],
                            f"{name} tf.saved_model.load {case['label']}")
    for case in cases:
        out_dir = tmp_path / f"cli-{case['label'].replace(' ', '-')}"
        names = list(np.load(case["inputs"], allow_pickle=True).files)
        result = saved_model_cli(version, case["signature"], case["inputs"], names, out_dir,
                                 imports=task.saved_model_imports)
        assert result.returncode == 0, result.stderr[-4000:]
        assert_same_answers(read_cli_outputs(out_dir), case["expected"], f"{name} saved_model_cli {case['label']}")
