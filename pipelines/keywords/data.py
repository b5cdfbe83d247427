"""Keyword datasets: FSDD and Speech Commands, detected from the folder layout, validated file by file.

FSDD: `recordings/<digit>_<speaker>_<index>.wav` (8 kHz). Splits: `official` (recordings 0-4 test, 5-9
validation, the rest train) or `speaker` (leave-one-speaker-out: `data.test_speaker` is the test set).
Speech Commands: one folder per word, optional `_background_noise_` and `_unknown_` folders; the split comes from
`splits.tsv`, else `testing_list.txt`/`validation_list.txt`, else the dataset's own speaker hash (`which_set`).
`data.words: core` is the standard 12-class task (10 words, `_unknown_`, `_silence_` cut from the noise);
`data.words: all` uses every word folder as a class.
"""
import csv
import functools
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lstm_apps.config import canonical_split
from lstm_apps.errors import ConfigError, DataError
from lstm_apps.inputs.audio import AUDIO_SUFFIXES, check_audio_file, read_audio_py, resample
from lstm_apps.inputs.download import fetch

CORE_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN, SILENCE, NOISE_FOLDER = "_unknown_", "_silence_", "_background_noise_"
SPLITS = ("train", "valid", "test")  # lstm_apps.config.canonical_split names
FSDD_NAME = re.compile(r"^(?P<digit>\d)_(?P<speaker>[A-Za-z]+)_(?P<index>\d+)$")

# Public copies for users with internet (keras.utils.get_file caches them under ~/.keras/datasets):
# dataset -> (url, folder inside the archive, sha256 of the download; lstm_apps.inputs.download.fetch checks it).
DOWNLOADS = {
    # GitHub's zip of tag v1.0.10 (commit d6938f9b), 16,419,872 bytes. The sum was observed for this download
    # (fsdd-v1.0.10 audit in a public repo) and is what `git archive --format=zip` of the tag gives in GitHub's
    # US Pacific time zone.
    "fsdd": ("https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.zip",
             "free-spoken-digit-dataset-1.0.10",
             "c680098f5d2355ba7cc4bd8b0ca9e0a24c00ebe3b4c552208889a4d28d4fbc2b"),
    # 2,428,923,189 bytes; tensorflow/datasets tensorflow_datasets/url_checksums/speech_commands.txt
    "speech_commands": ("http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz", "",
                        "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58"),
}


@dataclass
class KeywordData:
    """Everything training and evaluation need: labels, per-split files and label ids, silence clips, noise."""
    layout: str
    labels: list
    sample_rate: int
    num_samples: int
    files: dict = field(default_factory=dict)    # split -> list of paths
    targets: dict = field(default_factory=dict)  # split -> list of label ids
    silence: dict = field(default_factory=dict)  # split -> SilenceClips (cut when read)
    noise_bank: np.ndarray = None                # float32 [recordings, samples] for noise mixing
    noise_files: list = field(default_factory=list)  # the recordings noise_bank and silence are cut from
    audio_backend: str = "tf"                    # lstm_apps.inputs.audio.AUDIO_BACKENDS key
    prepared: dict = field(default_factory=dict)  # split -> folder of prepared shards (pipeline.prepare_splits)

    @property
    def facts(self):
        """What the run's metadata records: the layout found and the rate read from the files."""
        return {"layout": self.layout, "sample_rate": self.sample_rate, "num_samples": self.num_samples,
                "labels": self.labels, "clips": {split: len(files) for split, files in self.files.items()}}


def download(name, cache_dir=None):
    """Fetch and extract a public dataset into the Keras cache; reused when present."""
    if name not in DOWNLOADS:
        raise ConfigError(f"data.dataset: unknown dataset '{name}' (known: {', '.join(DOWNLOADS)})")
    url, inner, sha256 = DOWNLOADS[name]
    return str(fetch(name, url, sha256, extract=True, cache_dir=cache_dir) / inner)


def audio_files(folder):
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


@functools.lru_cache(maxsize=8)
def detect_layout(data_dir):
    """fsdd or speech_commands (cached: `train` asks for it when choosing a preset and again when reading)."""
    data_dir = Path(data_dir)
    for name, (detect, _) in LAYOUTS.items():
        if detect(data_dir):
            return name
    raise DataError(f"{data_dir}: no audio found; expected FSDD (recordings/<digit>_<speaker>_<index>.wav) or "
                    f"Speech Commands (one folder of .wav/.flac clips per word)")


def load(cfg, data_dir, check_files=True):
    """The clips of `data_dir`, as the config selects them. The config is only read. Every file is checked here,
    or (`check_files=False`, data.cache set) as `pipeline.prepare_splits` decodes it, so a fresh cache opens none."""
    data_cfg = cfg["data"]
    data_dir = Path(data_dir)
    layout = detect_layout(data_dir)
    examples, labels, noise_files = LAYOUTS[layout][1](data_dir, data_cfg)
    for split in SPLITS:
        if not any(s == split for _, _, s in examples):
            raise DataError(f"{data_dir}: the {split} split is empty; expected clips in train, valid and test")
    rate = data_cfg["sample_rate"] or _first_rate(examples)
    for path, _, _ in examples if check_files else ():
        check_audio_file(path, rate, allow_resample=data_cfg["resample"])
    num_samples = int(round(data_cfg["clip_seconds"] * rate))
    data = KeywordData(layout=layout, labels=labels, sample_rate=rate, num_samples=num_samples,
                       audio_backend=data_cfg["audio_backend"], noise_files=[str(p) for p in noise_files])
    index = {label: i for i, label in enumerate(labels)}
    for split in SPLITS:
        chosen = [(p, l) for p, l, s in examples if s == split]
        data.files[split] = [str(p) for p, _ in chosen]
        data.targets[split] = [index[l] for _, l in chosen]
    noise_parts = _noise_parts(noise_files, rate)
    data.noise_bank = _equal_rows(noise_parts["train"])
    if SILENCE in labels:
        for split in SPLITS:
            count = int(round(data_cfg["silence_fraction"] * len(data.files[split])))
            data.silence[split] = SilenceClips(noise_parts[split], count, num_samples, seed=SPLITS.index(split))
    return data


def _first_rate(examples):
    import soundfile
    return int(soundfile.info(str(examples[0][0])).samplerate)


# ----------------------------------------------------------------------------------------------- FSDD
def _is_fsdd(data_dir):
    if (data_dir / "recordings").is_dir():
        return True
    return bool(audio_files(data_dir)) and not any(p.is_dir() and audio_files(p) for p in data_dir.iterdir())


def _read_fsdd(data_dir, data_cfg):
    folder = data_dir / "recordings" if (data_dir / "recordings").is_dir() else data_dir
    parsed = []
    for path in audio_files(folder):
        match = FSDD_NAME.match(path.stem)
        if not match:
            raise DataError(f"{path}: file name carries no label; expected <digit>_<speaker>_<index>.wav, "
                            f"e.g. 3_theo_7.wav")
        parsed.append((path, match["digit"], match["speaker"], int(match["index"])))
    speakers = sorted({s for _, _, s, _ in parsed})
    mode, held_out = data_cfg["split"], data_cfg["test_speaker"]
    if mode == "speaker" and held_out not in speakers:
        raise ConfigError(f"data.test_speaker: '{held_out}' is not an FSDD speaker (speakers: {', '.join(speakers)})")
    if mode not in ("official", "speaker"):
        raise ConfigError(f"data.split: expected official or speaker for FSDD, got '{mode}'")
    examples = []
    for path, digit, speaker, index in parsed:
        if mode == "official":
            split = "test" if index < 5 else "valid" if index < 10 else "train"
        else:
            split = "test" if speaker == held_out else "valid" if index < 5 else "train"
        examples.append((path, digit, split))
    labels = sorted({digit for _, digit, _ in examples})
    return examples, labels, []


# ------------------------------------------------------------------------------------- Speech Commands
def _is_speech_commands(data_dir):
    return any(p.is_dir() and p.name != NOISE_FOLDER and audio_files(p) for p in data_dir.iterdir())


def _read_speech_commands(data_dir, data_cfg):
    stray = audio_files(data_dir)
    if stray:
        raise DataError(f"{stray[0]}: file name carries no label (not inside a word folder); expected WORD/NAME.wav")
    files = []
    for folder in sorted(p for p in data_dir.iterdir() if p.is_dir() and p.name != NOISE_FOLDER):
        for path in audio_files(folder):
            word = path.stem.split("_")[0] if folder.name == UNKNOWN else folder.name
            files.append((path, word))
    split_of = _speech_commands_splits(data_dir, [p for p, _ in files])
    mode = data_cfg["words"]
    if mode == "core":
        examples = [(p, w if w in CORE_WORDS else UNKNOWN, split_of[p]) for p, w in files]
        labels = [w for w in CORE_WORDS if any(l == w for _, l, _ in examples)] + [UNKNOWN, SILENCE]
    elif mode == "all":
        examples = [(p, w, split_of[p]) for p, w in files]
        labels = sorted({w for _, w, _ in examples})
    else:
        raise ConfigError(f"data.words: expected core or all, got '{mode}'")
    return examples, labels, audio_files(data_dir / NOISE_FOLDER) if (data_dir / NOISE_FOLDER).is_dir() else []


def _speech_commands_splits(data_dir, paths):
    """path -> split, from splits.tsv, the official lists, or the official speaker hash (in that order)."""
    relative = {p.relative_to(data_dir).as_posix(): p for p in paths}
    tsv = data_dir / "splits.tsv"
    if tsv.exists():
        split_of = {}
        with open(tsv, newline="", encoding="utf-8") as f:
            for line_number, row in enumerate(csv.DictReader(f, delimiter="\t"), start=2):
                if (row.get("path") or "").startswith(NOISE_FOLDER):
                    continue
                split = canonical_split(row.get("split") or "")
                if split not in SPLITS or not row.get("path"):
                    raise DataError(f"{tsv}:{line_number}: expected columns path and split "
                                    f"(train/validation/test), got {dict(row)}")
                if row["path"] in relative:
                    split_of[relative[row["path"]]] = split
        for name, path in relative.items():
            if path not in split_of:
                raise DataError(f"{path}: not listed in {tsv}; expected every clip to have a split")
        return split_of
    lists = {"test": data_dir / "testing_list.txt", "valid": data_dir / "validation_list.txt"}
    if all(p.exists() for p in lists.values()):
        listed = {}
        for split, path in lists.items():
            for line in path.read_text(encoding="utf-8").split():
                listed[line.replace(".wav", "")] = split
        return {p: listed.get(name.rsplit(".", 1)[0], "train") for name, p in relative.items()}
    return {p: _which_set(p.name) for p in paths}


def _which_set(filename, validation_percentage=10, testing_percentage=10):
    """The Speech Commands README's hash split: the same speaker always lands in the same split."""
    speaker = re.sub(r"_nohash_.*$", "", filename)
    percentage = int(hashlib.sha1(speaker.encode()).hexdigest(), 16) % (2 ** 27 - 1) * (100.0 / (2 ** 27 - 1))
    if percentage < validation_percentage:
        return "valid"
    if percentage < validation_percentage + testing_percentage:
        return "test"
    return "train"


# ------------------------------------------------------------------------------------- noise and silence
def _noise_parts(noise_files, rate):
    """Each noise recording cut 80/10/10 into train/validation/test parts, so no split hears another's noise.

    Without recordings (FSDD), a fixed-seed white-noise recording stands in."""
    recordings = []
    for path in noise_files:
        samples, file_rate = read_audio_py(path)
        recordings.append(np.asarray(resample(samples, file_rate, rate)) if file_rate != rate else samples)
    if not recordings:
        recordings = [np.clip(np.random.default_rng(0).normal(0, 0.2, 60 * rate), -1, 1).astype(np.float32)]
    parts = {split: [] for split in SPLITS}
    for samples in recordings:
        a, b = int(0.8 * len(samples)), int(0.9 * len(samples))
        parts["train"].append(samples[:a])
        parts["valid"].append(samples[a:b])
        parts["test"].append(samples[b:])
    return parts


def _equal_rows(recordings):
    length = min(len(r) for r in recordings)
    return np.stack([r[:length] for r in recordings]).astype(np.float32)


class SilenceClips:
    """`count` clips of background noise at random volumes in [0, 1], as the reference TF pipeline makes silence:
    drawn up front as (recording, start, volume), cut only when read (`dataset`), so a split of 100k clips does
    not hold its ~10k silence clips in memory. `clips[i]` cuts one (NumPy)."""

    def __init__(self, recordings, count, num_samples, seed):
        rng = np.random.default_rng(seed)
        self.num_samples = num_samples
        self.recordings = np.zeros((len(recordings), max(max(len(r) for r in recordings), num_samples)), np.float32)
        for row, samples in enumerate(recordings):
            self.recordings[row, :len(samples)] = samples
        lengths = np.array([len(r) for r in recordings])
        self.cuts = np.zeros((count, 3), np.int64)  # recording, start, piece length
        self.volumes = np.zeros(count, np.float32)
        for i in range(count):
            source = rng.integers(len(recordings))
            start = rng.integers(0, max(lengths[source] - num_samples, 0) + 1)
            self.cuts[i] = source, start, min(num_samples, lengths[source] - start)
            self.volumes[i] = rng.uniform(0, 1)

    def __len__(self):
        return len(self.cuts)

    def __getitem__(self, i):
        source, start, length = self.cuts[i]
        clip = np.zeros(self.num_samples, np.float32)
        clip[:length] = self.recordings[source, start:start + length] * self.volumes[i]
        return clip

    def dataset(self, start=0):
        """The clips from `start` on as a tf.data.Dataset of float32 [num_samples], cut in the graph."""
        import tensorflow as tf

        recordings, num_samples = tf.constant(self.recordings), self.num_samples

        def cut(where, volume):
            piece = recordings[where[0], where[1]:where[1] + where[2]] * volume
            return tf.pad(piece, [[0, num_samples - where[2]]])

        return tf.data.Dataset.from_tensor_slices((self.cuts[start:], self.volumes[start:])).map(cut)


# layout name -> (detect(data_dir) -> bool, read(data_dir, data_cfg) -> (examples, labels, noise files))
LAYOUTS = {
    "fsdd": (_is_fsdd, _read_fsdd),
    "speech_commands": (_is_speech_commands, _read_speech_commands),
}
