"""Sequence-to-sequence LSTM translation with attention and beam search (Multi30k en->de)."""
