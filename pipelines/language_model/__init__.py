"""Word-level LSTM language modelling (PTB, WikiText-2)."""
