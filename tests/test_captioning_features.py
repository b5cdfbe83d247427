"""Frame features: the real keras.applications backbone over really decoded frames, cached per clip, resumed
after an interruption, and precomputed features read in the same format."""
import numpy as np
import pytest

from lstm_apps.errors import ConfigError, DataError
from lstm_apps.inputs.video import read_frames
from pipelines.captioning import features


@pytest.fixture(scope="module")
def clips():
    from conftest import shared
    folder = shared("msvd") / "sample_clips"
    return {p.stem: p for p in sorted(folder.glob("*.avi"))[:2]}


def test_features_equal_the_backbone_on_the_decoded_frames_and_are_cached(clips, tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    assert features.extract(clips, tmp_path, "vgg16", "none", num_frames=3) == 2
    clip, path = next(iter(clips.items()))
    cached = features.load_features(tmp_path / f"{clip}.npy", num_frames=3, tail=(4096,))
    assert cached.shape == (3, 4096) and cached.dtype == np.float32 and (cached >= 0).all()  # fc2 is post-ReLU
    # the same numbers as the VGG16 fc2 network (same seed: the same random weights) on the frames decoded directly
    keras.utils.set_random_seed(0)
    direct = features.build_backbone("vgg16", "none").predict(read_frames(path, 3, size=(224, 224)), verbose=0)
    assert cached.std() > 0
    np.testing.assert_allclose(cached, direct, rtol=1e-4, atol=1e-4 * np.abs(direct).max())
    # cached files are reused: nothing is recomputed, and a deleted one (an interrupted run) is the only one redone
    stamps = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.npy")}
    assert features.extract(clips, tmp_path, "vgg16", "none", num_frames=3) == 0
    (tmp_path / f"{clip}.npy").unlink()
    assert features.extract(clips, tmp_path, "vgg16", "none", num_frames=3) == 1
    other = [name for name in stamps if name != f"{clip}.npy"][0]
    assert (tmp_path / other).stat().st_mtime_ns == stamps[other]


def test_a_local_weights_file_is_loaded_into_the_backbone(tmp_path):
    import keras

    random_init = features.build_backbone("mobilenet_v2", "none")
    application = next(layer for layer in random_init.layers if isinstance(layer, keras.Model))
    application.save_weights(tmp_path / "mobilenet_v2.weights.h5")  # stands in for the ImageNet file
    keras.utils.set_random_seed(123)  # another initialisation: only the file can make the outputs agree
    loaded = features.build_backbone("mobilenet_v2", str(tmp_path / "mobilenet_v2.weights.h5"))
    frames = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    np.testing.assert_allclose(loaded.predict(frames, verbose=0), random_init.predict(frames, verbose=0), atol=1e-5)


def test_small_backbones_by_name_and_bad_names(tmp_path):
    model = features.build_backbone("mobilenet_v2", "none")
    assert model.predict(np.zeros((2, 224, 224, 3), np.uint8), verbose=0).shape == (2, 1280)
    with pytest.raises(ConfigError, match="unknown backbone 'vgg19'"):
        features.build_backbone("vgg19")
    with pytest.raises(ConfigError, match="no such file"):
        features.build_backbone("vgg16", str(tmp_path / "missing.h5"))


def test_precomputed_msvd_features_read_from_the_archive_and_from_per_clip_files(tmp_path):
    from conftest import shared
    archive = shared("msvd_features") / "msvd_vgg16_mlds_fp32.npz"
    ids = [str(c) for c in np.load(archive)["clip_ids"]]
    read = features.read_feature_set(archive, ids + ["not_a_clip"], num_frames=80)
    assert len(ids) == 53 and sorted(read) == sorted(ids)  # a clip without features is left out
    first = read[ids[0]]
    assert first.shape == (80, 4096) and first.dtype == np.float32 and (first >= 0).all()
    # the same clip from the per-clip files public sets ship (named after the video: <clip>.avi.npy)
    sample = shared("msvd") / "sample_features_vgg16"
    clip = sorted(p.name.split(".avi")[0] for p in sample.glob("*.npy"))[0]
    from_files = features.read_feature_set(sample, [clip], num_frames=80)[clip]
    np.testing.assert_array_equal(from_files, read[clip])  # float64 files read as float32, the same numbers
    np.save(tmp_path / "a.npy", np.zeros((80, 4096), np.float32))
    np.save(tmp_path / "bad.npy", np.zeros((80, 10), np.float32))
    with pytest.raises(DataError, match=r"bad\.npy: features of shape \(80, 10\); expected \(80, 4096\)"):
        features.read_feature_set(tmp_path, ["a", "bad"], num_frames=80)
    with pytest.raises(DataError, match=r"bad\.npy: features of shape \(80, 10\); expected \(8, D\)"):
        features.load_features(tmp_path / "bad.npy", num_frames=8)
    with pytest.raises(DataError, match="nowhere.npy: no such file"):
        features.load_features(tmp_path / "nowhere.npy")


TWO_DEVICES = """
import sys, numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from pathlib import Path
from pipelines.captioning import features
videos = {p.stem: p for p in sorted(Path(sys.argv[1]).glob("*.avi"))[:2]}
devices = features.local_devices()
assert len(devices) == 2, devices
extractor = features.Extractor("vgg16", "none", devices, batch_size=2)
assert extractor.network.distribute_strategy.num_replicas_in_sync == 2
features.extract(videos, Path(sys.argv[2]) / "two", "vgg16", "none", num_frames=3, batch_size=2, devices=devices)
features.extract(videos, Path(sys.argv[2]) / "one", "vgg16", "none", num_frames=3, batch_size=2, devices=devices[:1])
for clip in videos:
    two, one = (np.load(Path(sys.argv[2]) / run / f"{clip}.npy") for run in ("two", "one"))
    assert two.shape == (3, 4096) and one.std() > 0, two.shape
    np.testing.assert_allclose(two, one, rtol=1e-4, atol=1e-4 * np.abs(one).max())
print("ok", len(videos))
"""


def test_extraction_on_two_devices_gives_the_features_of_one(tmp_path):
    """Two logical CPU devices (a fresh process: devices are fixed when TensorFlow starts) split the frames of
    two clips (2 x 3 frames, batches of 2 per device: uneven) and give the same features as one device."""
    import subprocess
    import sys

    from conftest import REPO, shared

    result = subprocess.run([sys.executable, "-c", TWO_DEVICES, str(shared("msvd") / "sample_clips"), str(tmp_path)],
                            capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0 and "ok 2" in result.stdout, result.stderr[-3000:]
