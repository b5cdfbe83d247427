"""The captioning inference module: features or frames in, captions out, all TF ops (frame encoder, the model's
encode and step, beam search, id -> word)."""
import sys

import numpy as np
import tensorflow as tf

from lstm_apps import decoding
from lstm_apps.errors import ConfigError
from lstm_apps.inputs.text import EOS_ID, PAD_ID, UNK_ID
from pipelines.captioning import features as features_lib
from pipelines.captioning.model import ARCHITECTURES


class Captioner(tf.Module):
    """A trained captioner with its words: serves `evaluate`, `predict` and the SavedModel alike.

    serving_default: features float32[batch, T, feature_dim]; frames: uint8[batch, T, *frame_shape] through the
    frame encoder (the trainable one inside the model, or the frozen backbone the features came from: that
    signature is there only when the backbone can be built). Both return caption string[batch] and score
    float32[batch] (log-probability of the caption and its end over the GNMT length penalty), decoded with
    `beam_size` (1 = greedy; default decode.beam_size).
    """

    def __init__(self, model, words, cfg, beam_size=None):
        super().__init__()
        self.model = model
        self.model_name = cfg["model"]["name"]
        self.architecture = ARCHITECTURES[self.model_name]
        self.features_cfg = features_cfg = cfg["features"]
        self.trainable_encoder = features_cfg["backbone"] == features_lib.TRAINABLE
        self._frame_encoder_error = None
        if self.trainable_encoder:
            self._frame_encoder = model.get_layer("frames").layer
            self.frame_shape = tuple(self._frame_encoder.inputs[0].shape[1:])
            self.feature_dim = int(self._frame_encoder.outputs[0].shape[-1])
        else:  # the frozen network the features came from, built only when frames come in
            self._frame_encoder = None
            self.frame_shape = (*features_lib.BACKBONES[features_cfg["backbone"]].size, 3)
            self.feature_dim = int(model.inputs[0].shape[-1])
        self.num_frames = cfg["data"]["num_frames"]
        self.words = tf.constant(words)
        decode_cfg = cfg["decode"]
        self.beam_size = beam_size or decode_cfg["beam_size"]
        self.alpha, self.max_length = decode_cfg["length_penalty"], decode_cfg["max_length"]
        self.decode_graph = decoding.GraphPerBeamSize(self.caption)

    # ----------------------------------------------------------------------------------------- frames
    @property
    def frame_encoder(self):
        if self._frame_encoder is None:
            self._frame_encoder = features_lib.build_backbone(self.features_cfg["backbone"],
                                                              self.features_cfg["weights"])
        return self._frame_encoder

    def has_frame_encoder(self):
        """Whether frames can come in: always with the trainable encoder; with a frozen backbone when it can be
        built (e.g. its ImageNet weights are within reach), else a warning on stderr, once, and features only."""
        if self._frame_encoder is None and self._frame_encoder_error is None:
            try:
                self.frame_encoder
            except ConfigError as error:
                self._frame_encoder_error = error
                print(f"warning: without the frames signature (features only): {error}", file=sys.stderr)
        return self._frame_encoder is not None

    @property
    def serves_frames(self):
        """False once the frozen backbone is known to be out of reach. `trackables()` (what an export holds) builds
        it; `predict --run-dir` builds it only when a video comes in, so features alone never wait for it."""
        return self._frame_encoder_error is None

    @property
    def array_tail(self):
        """The shape of one frame's array as the model reads it: frames (H, W, 3) or features (D,)."""
        return self.frame_shape if self.trainable_encoder else (self.feature_dim,)

    def features(self, frames):
        """uint8 frames [batch, T, H, W, 3] -> features [batch, T, D], every frame through the frame encoder."""
        shape = tf.shape(frames)
        per_frame = self.frame_encoder(tf.reshape(frames, [-1, *self.frame_shape]), training=False)
        return tf.reshape(per_frame, [shape[0], shape[1], self.feature_dim])

    # ----------------------------------------------------------------------------------------- decoding
    def caption(self, features, beam_size):
        """features [batch, T, D] -> {"caption": string[batch], "score": float32[batch]}."""
        features = tf.cast(features, tf.float32)
        batch = tf.shape(features)[0]
        context, states = self.architecture.encode(self.model, features)
        max_lengths = tf.fill([batch], self.max_length)
        banned = (PAD_ID, UNK_ID)

        def step_over(context):
            return lambda tokens, states: self.architecture.step(self.model, context, tokens, states)

        if beam_size == 1:
            tokens, lengths, log_probs = decoding.greedy_search(step_over(context), states, batch, EOS_ID, EOS_ID,
                                                                max_lengths, banned_ids=banned)
            scores = log_probs / decoding.gnmt_length_penalty(lengths + 1, self.alpha)
        else:
            context, states = tf.nest.map_structure(lambda t: decoding.tile_beams(t, beam_size), (context, states))
            tokens, lengths, scores = decoding.beam_search(step_over(context), states, batch, beam_size, EOS_ID,
                                                           EOS_ID, max_lengths, alpha=self.alpha, banned_ids=banned)
        words = tf.RaggedTensor.from_tensor(tf.gather(self.words, tokens), lengths=lengths)
        return {"caption": tf.strings.reduce_join(words, axis=1, separator=" "), "score": scores}

    def caption_arrays(self, arrays, batch_size=32):
        """Captions and scores (rounded as predict prints them) of many clips' arrays (features, or frames with
        the trainable encoder), batched, decoded with `beam_size`."""
        graph = self.decode_graph(self.beam_size)
        frames = arrays[0].dtype == np.uint8
        captions, scores = [], []
        for start in range(0, len(arrays), batch_size):
            batch = tf.constant(np.stack(arrays[start:start + batch_size]))
            outputs = graph(self.features(batch) if frames else batch)
            captions += [c.decode("utf-8") for c in outputs["caption"].numpy()]
            scores += [round(float(s), 4) for s in outputs["score"].numpy()]
        return captions, scores

    # ----------------------------------------------------------------------------------------- serving
    def serve_features(self, features):
        return self.caption(features, self.beam_size)

    def serve_frames(self, frames):
        return self.caption(self.features(frames), self.beam_size)

    def endpoints(self):
        endpoints = {"serving_default": (self.serve_features, [
            tf.TensorSpec([None, None, self.feature_dim], tf.float32, name="features")])}
        if self.serves_frames:
            endpoints["frames"] = (self.serve_frames, [
                tf.TensorSpec([None, None, *self.frame_shape], tf.uint8, name="frames")])
        return endpoints

    def warmup_inputs(self):
        warmup = {"serving_default": {"features": np.zeros((1, self.num_frames, self.feature_dim), np.float32)}}
        if self.serves_frames:
            warmup["frames"] = {"frames": np.zeros((1, 2, *self.frame_shape), np.uint8)}
        return warmup

    def serving_info(self):
        """What a client needs to prepare the input (`name` was `architecture` in the release before; predict
        reads only num_frames, frame_shape and feature_dim, which both releases write)."""
        return {"task": "captioning", "name": self.model_name, "backbone": self.features_cfg["backbone"],
                "num_frames": self.num_frames, "frame_shape": list(self.frame_shape),
                "feature_dim": self.feature_dim, "beam_size": self.beam_size, "signatures": sorted(self.endpoints())}

    def trackables(self):
        """The model, and the frame encoder when it can be built (a frozen one is built here: `export` asks for
        the trackables first, so its endpoints and warmup requests know whether frames are served)."""
        return [self.model, self.frame_encoder] if self.has_frame_encoder() else [self.model]
