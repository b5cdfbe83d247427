"""Captioning data: captions in the MSVD S2VT layout (also what `pipelines.captioning.synthetic` writes) and each
clip's array (its frame features, or its decoded frames for the trainable `conv` encoder).

  youtube_video_to_id_mapping.txt         "<clip> vidN" per line (the clip name is the video file's stem)
  sents_{train,val,test}_lc_nopunc.txt    "vidN<TAB>sentence", several references per clip

Clips are named by their video file stem everywhere else (videos/<clip>.<ext>, features/<clip>.npy). A line
without a tab, or an id missing from the map, is a DataError naming the file and line. The CLI's splits (train,
valid, test) are the files' data.train_split, data.valid_split and data.test_split (`file_split`).
"""
import os
from dataclasses import dataclass, field
from pathlib import Path

from lstm_apps.config import canonical_split
from lstm_apps.errors import DataError
from lstm_apps.inputs.text import read_lines
from lstm_apps.inputs.video import VIDEO_SUFFIXES
from pipelines.captioning import features as features_lib

SPLITS = ("train", "val", "test")  # the S2VT files' own split names
MAP_FILE = "youtube_video_to_id_mapping.txt"
SENTENCES_FILE = "sents_{split}_lc_nopunc.txt"


# --------------------------------------------------------------------------------------------- caption files
@dataclass
class Captions:
    folder: Path
    references: dict = field(default_factory=dict)  # the files' split name -> {clip: [sentences]}


def read_id_map(path):
    """{vidN: clip} from the mapping file."""
    ids = {}
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2:
            raise DataError(f"{path}:{number}: expected '<clip> vidN', found {line!r}")
        clip, video_id = fields
        ids[video_id] = clip
    return ids


def read_references(path, ids):
    """{clip: [sentences]} from one split's sentence file (lowercased, whitespace-normalised)."""
    references = {}
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        video_id, tab, sentence = line.partition("\t")
        if not tab or not sentence.strip():
            raise DataError(f"{path}:{number}: expected 'vidN<TAB>sentence', found {line!r}")
        if video_id not in ids:
            raise DataError(f"{path}:{number}: id {video_id!r} is not in {MAP_FILE}")
        references.setdefault(ids[video_id], []).append(" ".join(sentence.lower().split()))
    if not references:
        raise DataError(f"{path}: no captions; expected 'vidN<TAB>sentence' lines")
    return references


def read_captions(folder, splits=SPLITS):
    """The captions of the asked splits (the files' names); a missing file names what was expected."""
    folder = Path(folder)
    if not (folder / MAP_FILE).is_file():
        raise DataError(f"{folder}: no {MAP_FILE}; expected the S2VT caption layout ({MAP_FILE} and "
                        f"{SENTENCES_FILE.format(split='train')} ...)")
    ids = read_id_map(folder / MAP_FILE)
    captions = Captions(folder)
    for split in splits:
        captions.references[split] = read_references(folder / SENTENCES_FILE.format(split=split), ids)
    return captions


def file_split(cfg, split):
    """The files' name of a CLI split: train, valid (val, validation) and test are data.train_split,
    data.valid_split and data.test_split; any other name is a split of the data folder."""
    split = canonical_split(split)
    return cfg["data"][f"{split}_split"] if split in ("train", "valid", "test") else split


# --------------------------------------------------------------------------------------------- clip arrays
def keras_home():
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))


def download(name, cache_dir=None):
    """`generated`: write the generated clips once into the Keras cache (there is no MSVD download: its videos
    are not redistributable; give --data-dir with the S2VT caption folder and data.features)."""
    if name != "generated":
        raise DataError(f"data.dataset: '{name}' cannot be downloaded (known: generated); pass --data-dir with the "
                        f"S2VT caption folder")
    from pipelines.captioning import synthetic

    folder = Path(cache_dir or keras_home()) / "datasets" / "lstm_apps_captioning_clips"
    if not (folder / MAP_FILE).exists():
        synthetic.generate(folder)
    return str(folder)


def feature_cache(cfg, data_dir, cache_dir=None):
    """`cache_dir` (default features.cache_dir), or <data.dir>/features/<backbone>-<weights>-<frames> (the Keras
    cache when data.dir is read-only): one cache per way of computing the features, shared by every run on the same
    data."""
    features_cfg = cfg["features"]
    cache_dir = cache_dir or features_cfg["cache_dir"]
    if cache_dir:
        return Path(cache_dir)
    if features_cfg["backbone"] == features_lib.TRAINABLE:  # the decoded frames themselves
        tag = f"frames-{features_cfg['size']}px-{cfg['data']['num_frames']}"
    else:
        tag = f"{features_cfg['backbone']}-{Path(str(features_cfg['weights'])).stem}-{cfg['data']['num_frames']}"
    data_dir = Path(data_dir)
    root = data_dir if os.access(data_dir, os.W_OK) else keras_home() / "lstm_apps" / data_dir.name
    return root / "features" / tag


def sources(cfg, recorded=None):
    """(data.features, features.cache_dir) as absolute paths (or None): as a run recorded them (`recorded`, its
    metadata facts, resolved when it first read the data), else from the config, resolved now (the release before
    metadata.json wrote data.features into config.yaml resolved)."""
    recorded = recorded or {}

    def resolved(fact, value):
        if fact in recorded:
            return recorded[fact]
        return str(Path(value).resolve()) if value else None

    return resolved("features", cfg["data"]["features"]), resolved("cache_dir", cfg["features"]["cache_dir"])


def clip_arrays(cfg, data_dir, clips, tail=None, features=None, cache_dir=None, lazy=False):
    """({clip: array} for `clips`, the folder or archive read): from the precomputed `features`, or decoded from
    the videos and extracted into the cache first. Clips without features (or without a video) are left out, and
    counted on stdout. `lazy`: from a folder, each clip read only when it is looked up (`FeatureFiles`)."""
    data_cfg, features_cfg = cfg["data"], cfg["features"]
    if features:
        source = Path(features)
    else:
        folder = Path(data_dir) / data_cfg["videos"]
        if not folder.is_dir():
            raise DataError(f"{folder}: no such folder; expected the clips' video files (data.videos) or "
                            f"precomputed features (data.features)")
        videos = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in VIDEO_SUFFIXES}
        source = feature_cache(cfg, data_dir, cache_dir)
        features_lib.extract({c: videos[c] for c in clips if c in videos}, source, features_cfg["backbone"],
                             features_cfg["weights"], data_cfg["num_frames"], size=features_cfg["size"],
                             batch_size=features_cfg["batch_size"])
    arrays = features_lib.read_feature_set(source, sorted(clips), data_cfg["num_frames"], tail, lazy=lazy)
    if len(arrays) < len(clips):
        print(f"{source}: {len(clips) - len(arrays)} of {len(clips)} clips have no features and are left out")
    return arrays, source


@dataclass
class ClipData:
    """The captions of some splits (by CLI name: train, valid, test) and, once read, each clip's array."""
    folder: Path
    captions: Captions
    splits: dict                                 # CLI split -> the files' split name
    arrays: dict = field(default_factory=dict)   # CLI split -> {clip: features (T, D) or frames (T, H, W, 3)}
                                                 # (with data.cache a FeatureFiles: read clip by clip)
    prepared: dict = field(default_factory=dict)  # CLI split -> folder of prepared shards (pipeline.prepare_splits)
    sources: dict = field(default_factory=dict)  # what the arrays were read from (see `facts`)

    def references(self, split):
        return self.captions.references[self.splits[split]]

    @property
    def clip_shape(self):
        return next(iter(self.arrays["train"].values())).shape

    @property
    def facts(self):
        """What the run's metadata records: the features and cache folder as resolved (evaluate reads its arrays
        from the same ones), what was read, how many clips of each split have an array, and their shape."""
        facts = {**self.sources, "clips": {split: len(arrays) for split, arrays in self.arrays.items()}}
        if "train" in self.arrays:
            facts["clip_shape"] = list(self.clip_shape)
        return facts


def read_arrays(cfg, data, split, tail=None, recorded=None, lazy=False):
    """data.arrays[split]: the split's clips' arrays, from the sources a run recorded (`recorded`: its metadata)
    or the config's; `tail` the shape after the frames axis (default: the first clip's). A split without any is a
    DataError."""
    features, cache_dir = sources(cfg, recorded)
    arrays, source = clip_arrays(cfg, data.folder, data.references(split), tail, features, cache_dir, lazy)
    if not arrays:
        raise DataError(f"{data.folder}: no clip of split '{data.splits[split]}' has features; expected videos in "
                        f"data.videos or precomputed features in data.features")
    data.arrays[split] = arrays
    data.sources = {"features": features, "cache_dir": cache_dir, "arrays_source": str(Path(source).resolve())}


def load(cfg, data_dir, splits, arrays=True):
    """The captions of `splits` (CLI names) and, with `arrays`, every clip's array (read from data.features, else
    decoded from the videos and extracted into the cache): every file checked. With data.cache the arrays are
    read clip by clip as the cache is prepared (`FeatureFiles`), never all at once. The config is only read."""
    data_dir = Path(data_dir)
    names = {canonical_split(split): file_split(cfg, split) for split in splits}
    data = ClipData(data_dir, read_captions(data_dir, tuple(names.values())), names)
    if arrays:
        for split in names:
            read_arrays(cfg, data, split, lazy=bool(cfg["data"]["cache"]))
    return data
