"""Shared Keras layers, used by every task. Each is serializable (get_config) and registered under `lstm_apps>`."""
from lstm_apps.layers.attention_pooling import AttentionPooling
from lstm_apps.layers.audio_features import LogMelSpectrogram, PerClipNormalization, SpecAugment
from lstm_apps.layers.lstm_stack import CUDNN_LSTM_ARGS, LSTMStack
from lstm_apps.layers.luong_attention import LuongAttention
from lstm_apps.layers.masking import lengths_to_mask, pad_right
from lstm_apps.layers.reversible_embedding import ReversibleEmbedding

__all__ = ["AttentionPooling", "CUDNN_LSTM_ARGS", "LSTMStack", "LogMelSpectrogram", "LuongAttention", "PerClipNormalization",
           "ReversibleEmbedding", "SpecAugment",
           "lengths_to_mask", "pad_right"]
