"""Writes lstm_stack_v1.keras, lstm_stack_v1.weights.h5, lstm_stack_v1_stateful.keras and lstm_stack_v1.npz with
the LSTMStack of commit f77cab3 (its LSTMs plain keras.layers.LSTM, before lstm_apps.layers.portable_lstm.LSTM).
It was run once, with that code first on the path:

    mkdir /tmp/old-layers && git archive f77cab3 lstm_apps | tar -x -C /tmp/old-layers
    PYTHONPATH=/tmp/old-layers python tests/data/make_lstm_stack_fixture.py
    rm -r /tmp/old-layers

tests/test_export_gpu.py loads the files with the current class and compares its outputs and weights with these.
"""
from pathlib import Path

import keras
import numpy as np

import lstm_apps.layers.lstm_stack as module
from lstm_apps.layers import LSTMStack

if hasattr(module, "LSTM"):
    raise SystemExit(f"{module.__file__} is the new stack: these files must come from the old one (see above)")
HERE = Path(__file__).resolve().parent

keras.utils.set_random_seed(0)
features = keras.Input((None, 4), name="features")
mask = keras.Input((None,), dtype="bool", name="mask")
# an encoder (bidirectional, masked, every step) feeding a decoder that returns its states (translation's shape)
encoded = LSTMStack(6, num_layers=2, bidirectional=True, return_sequences=True, name="encoder")(features, mask=mask)
decoded, *states = LSTMStack(5, num_layers=2, return_state=True, name="decoder")(encoded, mask=mask)
model = keras.Model([features, mask], [decoded, *states], name="lstm_stack_v1")
# the language model's training network: stateful, fixed batch
stateful_input = keras.Input((None, 4), batch_size=2, name="tokens")
stateful = keras.Model(stateful_input, LSTMStack(3, stateful=True, return_sequences=True, name="stateful")(
    stateful_input), name="lstm_stack_v1_stateful")

rng = np.random.default_rng(0)
inputs = rng.normal(size=(3, 5, 4)).astype("float32")
lengths = np.array([5, 3, 1])
input_mask = np.arange(5)[None, :] < lengths[:, None]
outputs = [np.asarray(x) for x in model([inputs, input_mask])]
stateful_outputs = [np.asarray(stateful(inputs[:2])) for _ in range(2)]  # the second call starts from the first's
model.save(HERE / "lstm_stack_v1.keras")
model.save_weights(HERE / "lstm_stack_v1.weights.h5")
stateful.get_layer("stateful").reset_state()
stateful.save(HERE / "lstm_stack_v1_stateful.keras")
arrays = {f"weight_{index}": value for index, value in enumerate(model.get_weights())}
arrays.update({f"output_{index}": value for index, value in enumerate(outputs)})
arrays.update({f"stateful_output_{index}": value for index, value in enumerate(stateful_outputs)})
np.savez(HERE / "lstm_stack_v1.npz", inputs=inputs, mask=input_mask, **arrays)
print("wrote", HERE, "from", module.__file__, [w.shape for w in model.get_weights()])
