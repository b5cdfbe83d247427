"""Frame features: a keras.applications CNN over the sampled frames of each clip, cached as one float32 (T, D)
.npy per clip (`<cache>/<clip>.npy`, the layout of the public MSVD feature sets, so precomputed features are read
the same way).

Extraction is batched, shows a progress bar, writes each file atomically and skips clips already cached: an
interrupted run resumes where it stopped. ImageNet weights come from the Keras cache (`weights: imagenet`; there
is no network here) or a local weights file (`weights: /path/to/file.h5`); `weights: none` keeps the random
initialisation (tests: the real network and the real decoding, without pretrained weights).
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstm_apps.errors import ConfigError, DataError
from lstm_apps.inputs.video import read_frames


@dataclass(frozen=True)
class Backbone:
    application: str    # keras.applications attribute
    module: str         # keras.applications submodule with preprocess_input
    size: tuple         # input height, width
    output: str         # "fc2" (the VGG16 fc2 layer, as the MSVD feature sets) or "avg" (global average pooling)


# features.backbone -> how to build it
BACKBONES = {
    "vgg16": Backbone("VGG16", "vgg16", (224, 224), "fc2"),
    "resnet50": Backbone("ResNet50", "resnet50", (224, 224), "avg"),
    "inception_v3": Backbone("InceptionV3", "inception_v3", (299, 299), "avg"),
    "mobilenet_v2": Backbone("MobileNetV2", "mobilenet_v2", (224, 224), "avg"),
}


def build_backbone(name, weights="imagenet"):
    """A Keras model: uint8 frames [n, H, W, 3] at the backbone's size -> float32 features [n, D], the backbone's
    own preprocessing included."""
    import keras

    if name not in BACKBONES:
        raise ConfigError(f"features.backbone: unknown backbone '{name}' (known: {', '.join(BACKBONES)})")
    spec = BACKBONES[name]
    if weights not in ("imagenet", None, "none") and not Path(weights).is_file():
        raise ConfigError(f"features.weights: {weights}: no such file; expected imagenet, none or a weights file")
    weights = None if weights in (None, "none") else weights
    application = getattr(keras.applications, spec.application)
    preprocess = getattr(keras.applications, spec.module).preprocess_input
    try:
        if spec.output == "fc2":
            full = application(weights=weights, include_top=True, input_shape=(*spec.size, 3))
            network = keras.Model(full.inputs, full.get_layer("fc2").output)
        else:
            network = application(weights=weights, include_top=False, pooling="avg", input_shape=(*spec.size, 3))
    except Exception as error:  # a failed download or a weights file of another network
        raise ConfigError(f"features.weights: could not load {weights} for {name} ({str(error).splitlines()[0]}); "
                          f"give a local weights file or weights: none") from None
    frames = keras.Input((*spec.size, 3), dtype="uint8", name="frames")
    features = network(preprocess(keras.ops.cast(frames, "float32")))
    return keras.Model(frames, features, name=f"{name}_features")


def extract(videos, cache_dir, backbone_name, weights, num_frames, batch_size=32):
    """Features of every video ({clip id: path}) into cache_dir/<clip>.npy, skipping those already there.
    Returns the number of clips computed now."""
    import keras

    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    todo = {clip: path for clip, path in videos.items() if not (cache_dir / f"{clip}.npy").exists()}
    if not todo:
        return 0
    backbone = build_backbone(backbone_name, weights)
    size = BACKBONES[backbone_name].size
    progress = keras.utils.Progbar(len(todo), unit_name="clip")
    for done, (clip, path) in enumerate(sorted(todo.items()), start=1):
        frames = read_frames(path, num_frames, size=size)
        features = backbone.predict(frames, batch_size=batch_size, verbose=0).astype(np.float32)
        tmp = cache_dir / f".{clip}.tmp.npy"
        np.save(tmp, features)
        tmp.replace(cache_dir / f"{clip}.npy")
        progress.update(done)
    return len(todo)


def load_features(cache_dir, clip, num_frames=None, dim=None):
    """One clip's (T, D) features; a missing file or one of the wrong shape is a DataError naming it."""
    path = Path(cache_dir) / f"{clip}.npy"
    if not path.is_file():
        raise DataError(f"{path}: missing features for clip {clip}; run feature extraction or give the folder "
                        f"of precomputed (T, D) .npy files")
    try:
        features = np.load(path)
    except (ValueError, OSError) as error:
        raise DataError(f"{path}: not a .npy array ({error})") from None
    if features.ndim != 2 or (num_frames and features.shape[0] != num_frames) or (dim and features.shape[1] != dim):
        expected = f"({num_frames or 'T'}, {dim or 'D'})"
        raise DataError(f"{path}: features of shape {features.shape}; expected {expected}")
    return features.astype(np.float32)


def unpack_npz(npz_path, cache_dir):
    """Write the clips of a features archive (`features` [n, T, D] + `clip_ids` [n], as the shared MSVD set) as
    one .npy per clip in cache_dir. Returns the clip ids."""
    archive = np.load(npz_path)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    for clip, features in zip(archive["clip_ids"], archive["features"]):
        np.save(cache_dir / f"{clip}.npy", features.astype(np.float32))
    return [str(c) for c in archive["clip_ids"]]
