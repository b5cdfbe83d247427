"""Frame features: a keras.applications CNN over the sampled frames of each clip, cached as one float32 (T, D)
.npy per clip (`<cache>/<clip>.npy`, the layout of the public MSVD feature sets, so precomputed features are read
the same way).

Extraction is batched, shows a progress bar, writes each file atomically and skips clips already cached: an
interrupted run resumes where it stopped. ImageNet weights come from the Keras cache (`weights: imagenet`; there
is no network here) or a local weights file (`weights: /path/to/file.h5`); `weights: none` keeps the random
initialisation (tests: the real network and the real decoding, without pretrained weights), built from seed 0 so the features
cached at extraction and the backbone inside an export are the same network.
"""
from collections.abc import Mapping
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


FRAMES_PER_CALL = 1024  # frames of consecutive clips through the backbone in one distributed predict

# features.backbone -> how to build it (and `conv`: the small frame encoder trained end to end with the captioner,
# in pipelines.captioning.model)
TRAINABLE = "conv"
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
        raise ConfigError(f"features.backbone: unknown backbone '{name}' (known: {', '.join([TRAINABLE, *BACKBONES])})")
    spec = BACKBONES[name]
    if weights not in ("imagenet", None, "none") and not Path(weights).is_file():
        raise ConfigError(f"features.weights: {weights}: no such file; expected imagenet, none or a weights file")
    weights = None if weights in (None, "none") else weights
    if weights is None:  # the same random network every time: extraction and export must agree
        keras.utils.set_random_seed(0)
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


def extract(videos, cache_dir, backbone_name, weights, num_frames, size=None, batch_size=32, devices=None):
    """Features of every video ({clip id: path}) into cache_dir/<clip>.npy, skipping those already there.
    With the trainable `conv` frame encoder the cached arrays are the decoded frames themselves, uint8
    (T, size, size, 3): the encoder learns from them in training. Clips are decoded in parallel
    (`decoded_videos`) and the backbone runs on `devices` (default `local_devices()`: every local GPU) with
    `batch_size` frames per device. Returns the number of clips computed now."""
    import keras

    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    todo = {clip: path for clip, path in videos.items() if not (cache_dir / f"{clip}.npy").exists()}
    if not todo:
        return 0
    trainable = backbone_name == TRAINABLE
    frame_size = (size, size) if trainable else BACKBONES[backbone_name].size
    backbone = None if trainable else Extractor(backbone_name, weights, devices or local_devices(), batch_size)
    clips_per_call = 1 if trainable else max(1, FRAMES_PER_CALL // num_frames)
    progress, done, chunk = keras.utils.Progbar(len(todo), unit_name="clip"), 0, []
    for index, decoded in enumerate(decoded_videos(todo, num_frames, frame_size), start=1):
        chunk.append(decoded)
        if len(chunk) < clips_per_call and index < len(todo):
            continue
        arrays = ([frames for _, frames in chunk] if trainable else
                  np.split(backbone(np.concatenate([frames for _, frames in chunk])), len(chunk)))
        for (clip, _), array in zip(chunk, arrays):  # each clip's file as soon as it is computed
            tmp = cache_dir / f".{clip}.tmp.npy"
            np.save(tmp, array)
            tmp.replace(cache_dir / f"{clip}.npy")
        done, chunk = done + len(chunk), []
        progress.update(done)
    return len(todo)


def decoded_videos(videos, num_frames, frame_size):
    """(clip, uint8 frames [num_frames, *frame_size, 3]) of {clip: path}, in clip order, decoded by PyAV in a
    tf.data map with parallel calls (FFmpeg runs without the GIL, so the cores decode side by side). A bad file
    is the DataError of `read_frames`, naming it."""
    import tensorflow as tf

    clips = sorted(videos)

    def decode(path):
        try:
            return read_frames(path.decode(), num_frames, size=frame_size), b""
        except DataError as error:
            return np.zeros((0, *frame_size, 3), np.uint8), str(error).encode()

    paths = tf.data.Dataset.from_tensor_slices([str(videos[clip]) for clip in clips])
    decoded = paths.map(lambda path: tf.numpy_function(decode, [path], (tf.uint8, tf.string), stateful=False),
                        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(2)
    for clip, (frames, problem) in zip(clips, decoded.as_numpy_iterator()):
        if problem:
            raise DataError(problem.decode())
        yield clip, frames


def local_devices():
    """The devices feature extraction runs on: every local GPU, else every logical CPU device (one, unless the
    process split its CPU, as the tests and benchmarks do)."""
    import tensorflow as tf

    return [d.name for d in tf.config.list_logical_devices("GPU")] or [d.name for d in
                                                                       tf.config.list_logical_devices("CPU")]


class Extractor:
    """A frozen backbone on several devices: each call splits the frames' batches over them (Keras predict under
    tf.distribute's MirroredStrategy, one replica per device) and returns float32 features [frames, D] in order."""

    def __init__(self, backbone_name, weights, devices, batch_size=32):
        import tensorflow as tf

        self.strategy = tf.distribute.MirroredStrategy(devices) if len(devices) > 1 else tf.distribute.get_strategy()
        with self.strategy.scope():
            self.network = build_backbone(backbone_name, weights)
        self.batch_size = batch_size * self.strategy.num_replicas_in_sync

    def __call__(self, frames):
        return self.network.predict(frames, batch_size=self.batch_size, verbose=0).astype(np.float32)


def check_shape(array, source, num_frames=None, tail=None):
    """`array` as (num_frames or any T, *tail); anything else is a DataError naming `source`."""
    expected = (num_frames, *tail) if tail else None
    if array.ndim < 2 or (num_frames and array.shape[0] != num_frames) or (tail and array.shape[1:] != tuple(tail)):
        wanted = f"({num_frames or 'T'}, {', '.join(map(str, tail)) if tail else 'D'})"
        raise DataError(f"{source}: features of shape {array.shape}; expected {wanted}")
    return array if array.dtype == np.uint8 else array.astype(np.float32)


def find_feature_file(folder, clip):
    """folder/<clip>.npy, or folder/<clip>.<ext>.npy (public sets name them after the video: `x.avi.npy`)."""
    path = Path(folder) / f"{clip}.npy"
    if path.is_file():
        return path
    return next(iter(sorted(Path(folder).glob(f"{clip}.*.npy"))), None)


class FeatureFiles(Mapping):
    """{clip: array} over a folder of per-clip .npy files, each read (and checked: `load_features`) when it is
    looked up, never held: what a prepared cache is made from, one clip at a time."""

    def __init__(self, paths, num_frames=None, tail=None):
        self.paths, self.num_frames, self.tail = dict(sorted(paths.items())), num_frames, tail

    def __getitem__(self, clip):
        return load_features(self.paths[clip], self.num_frames, self.tail)

    def __iter__(self):
        return iter(self.paths)

    def __len__(self):
        return len(self.paths)


def read_feature_set(source, clips, num_frames=None, tail=None, lazy=False):
    """{clip: array} of the `clips` found in `source`: a folder of per-clip .npy files or an .npz archive with
    `features` [n, T, ...] and `clip_ids` [n] (as the shared MSVD set). Clips without features are left out; a
    file of the wrong shape (T other than num_frames, or other trailing dimensions than `tail`, by default those
    of the first clip) is a DataError naming it. `lazy` (a folder): a `FeatureFiles` that reads each clip when
    it is looked up."""
    source = Path(source)
    if source.suffix == ".npz":
        try:
            archive = np.load(source)
            ids, arrays = [str(c) for c in archive["clip_ids"]], archive["features"]
        except (KeyError, ValueError, OSError) as error:
            raise DataError(f"{source}: not a features archive ({error}); expected `features` and `clip_ids`") \
                from None
        index = {clip: i for i, clip in enumerate(ids)}
        return {clip: check_shape(arrays[index[clip]], f"{source}[{clip}]", num_frames, tail or arrays.shape[2:])
                for clip in clips if clip in index}
    if not source.is_dir():
        raise DataError(f"data.features {source}: no such folder or .npz archive; expected per-clip (T, D) .npy files")
    if lazy:
        paths = {clip: find_feature_file(source, clip) for clip in clips}
        found = FeatureFiles({clip: path for clip, path in paths.items() if path is not None}, num_frames, tail)
        found.tail = tail or (next(iter(found.values())).shape[1:] if found else None)
        return found
    found = {}
    for clip in clips:
        path = find_feature_file(source, clip)
        if path is not None:
            found[clip] = load_features(path, num_frames, tail)
            tail = tail or found[clip].shape[1:]  # every clip as the first
    return found


def load_features(path, num_frames=None, tail=None):
    """One clip's array from a .npy file; an unreadable file or one of the wrong shape is a DataError naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; expected a (T, D) .npy features file")
    try:
        array = np.load(path)
    except (ValueError, OSError) as error:
        raise DataError(f"{path}: not a .npy array ({str(error).splitlines()[0]})") from None
    return check_shape(array, path, num_frames, tail)
