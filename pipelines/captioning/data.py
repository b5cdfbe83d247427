"""Captions in the MSVD S2VT layout (also what `pipelines.captioning.synthetic` writes):

  youtube_video_to_id_mapping.txt         "<clip> vidN" per line (the clip name is the video file's stem)
  sents_{train,val,test}_lc_nopunc.txt    "vidN<TAB>sentence", several references per clip

Clips are named by their video file stem everywhere else (videos/<clip>.<ext>, features/<clip>.npy). A line
without a tab, or an id missing from the map, is a DataError naming the file and line.
"""
from dataclasses import dataclass, field
from pathlib import Path

from lstm_apps.errors import DataError
from lstm_apps.inputs.text import read_lines

SPLITS = ("train", "val", "test")
MAP_FILE = "youtube_video_to_id_mapping.txt"
SENTENCES_FILE = "sents_{split}_lc_nopunc.txt"


@dataclass
class Captions:
    folder: Path
    references: dict = field(default_factory=dict)  # split -> {clip: [sentences]}


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


def load(folder, splits=SPLITS):
    """The captions of the asked splits; a missing file names what was expected."""
    folder = Path(folder)
    if not (folder / MAP_FILE).is_file():
        raise DataError(f"{folder}: no {MAP_FILE}; expected the S2VT caption layout ({MAP_FILE} and "
                        f"{SENTENCES_FILE.format(split='train')} ...)")
    ids = read_id_map(folder / MAP_FILE)
    captions = Captions(folder)
    for split in splits:
        captions.references[split] = read_references(folder / SENTENCES_FILE.format(split=split), ids)
    return captions
