"""Writes reversible_embedding_v1.keras and reversible_embedding_v1.npz with the ReversibleEmbedding of commit
a3121bc (the layer as of 21714be, before it was rebuilt on keras.layers.ReversibleEmbedding). It was run once,
with that code first on the path:

    git worktree add --detach /tmp/old-layers a3121bc
    PYTHONPATH=/tmp/old-layers python tests/data/make_reversible_embedding_fixture.py
    git worktree remove /tmp/old-layers

tests/test_layers.py loads the files with the current class and compares its outputs and weights with these.
"""
from pathlib import Path

import keras
import numpy as np

import lstm_apps.layers.reversible_embedding as module
from lstm_apps.layers import ReversibleEmbedding

if issubclass(ReversibleEmbedding, keras.layers.ReversibleEmbedding):
    raise SystemExit(f"{module.__file__} is the new layer: these files must come from the old one (see above)")
HERE = Path(__file__).resolve().parent
VOCAB, DIM, UNITS = 11, 4, 6

keras.utils.set_random_seed(0)
tokens = keras.Input((None,), dtype="int32", name="tokens")
# the language model's use: bias started at log unigram frequencies, a projection since UNITS != DIM
lm_embedding = ReversibleEmbedding(VOCAB, DIM, word_dropout=0.2, output_bias=True,
                                   embeddings_initializer=keras.initializers.RandomUniform(-0.1, 0.1),
                                   name="embedding")
hidden = keras.layers.Dense(UNITS, activation="tanh", name="hidden")(lm_embedding(tokens))
lm_logits = lm_embedding(keras.layers.Dense(DIM, name="projection")(hidden), reverse=True)
# the attention decoder's use without tied outputs: no bias
plain_embedding = ReversibleEmbedding(VOCAB, DIM, output_bias=False, name="target_embedding")
plain_logits = plain_embedding(plain_embedding(tokens), reverse=True)
model = keras.Model(tokens, [lm_logits, plain_logits], name="reversible_embedding_v1")
lm_embedding.bias.assign(np.log(np.random.default_rng(0).dirichlet(np.ones(VOCAB))).astype("float32"))

inputs = np.array([[1, 2, 3, 4, 0], [5, 6, 7, 8, 10]], "int32")
lm_out, plain_out = model.predict(inputs, verbose=0)
model.save(HERE / "reversible_embedding_v1.keras")
weights = {f"weight_{index}": value for index, value in enumerate(model.get_weights())}
np.savez(HERE / "reversible_embedding_v1.npz", inputs=inputs, lm_logits=lm_out, plain_logits=plain_out, **weights)
print("wrote", HERE, "from", module.__file__, [w.shape for w in model.get_weights()])
