"""Video captioning: frames -> CNN features -> LSTM encoder/decoder -> sentence (MSVD; generated clips)."""
