"""lstm-apps: LSTM pipelines on TensorFlow/Keras 3 (speech keywords, translation, language modelling, captioning)."""

__version__ = "0.1.0"
