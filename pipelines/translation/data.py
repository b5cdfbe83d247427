"""Parallel corpora: per split, two line-aligned files `{split}.{lang}` (plain or .gz, the Multi30k raw layout) or
one `{split}.tsv` (source<TAB>target). Empty pairs are dropped and counted.

Splits are asked for by their CLI names: `train`, `valid`, `test` (`lstm_apps.config.canonical_split`) are the
files named by data.train_split, data.valid_split, data.test_split (e.g. `val`, `test_2016_flickr`); any other name
is a split of the folder itself (e.g. `test_2017_flickr`).
"""
from dataclasses import dataclass, field
from pathlib import Path

from lstm_apps.config import canonical_split
from lstm_apps.errors import DataError
from lstm_apps.inputs.download import fetch
from lstm_apps.inputs.text import read_parallel, read_parallel_tsv

MULTI30K_URL = "https://github.com/multi30k/dataset/raw/master/data/task1/raw/{split}.{lang}.gz"
MULTI30K_SPLITS = ("train", "val", "test_2016_flickr", "test_2017_flickr", "test_2017_mscoco", "test_2018_flickr")
CONFIGURED_SPLITS = {"train": "train_split", "valid": "valid_split", "test": "test_split"}  # CLI name -> data.* key


@dataclass
class ParallelData:
    """The pairs of the splits asked for, keyed by the name they were asked by (`train`, `valid`, ...)."""
    data_dir: Path                               # the folder read (data.dir, or its raw/ subfolder)
    names: dict = field(default_factory=dict)    # split -> its name in the folder (e.g. valid -> val)
    pairs: dict = field(default_factory=dict)    # split -> [(source, target)]
    dropped: dict = field(default_factory=dict)  # split -> pairs left out because one side was empty
    files: dict = field(default_factory=dict)    # split -> the file(s) it came from, for messages

    @property
    def facts(self):
        """What the run's metadata records: the folder read, and the pairs found per split."""
        return {"folder": str(self.data_dir), "splits": dict(self.names),
                "pairs": {split: len(pairs) for split, pairs in self.pairs.items()},
                "dropped_empty": dict(self.dropped)}


def download(name, cache_dir=None):
    if name != "multi30k":
        raise DataError(f"data.dataset: unknown dataset '{name}' (known: multi30k)")
    paths = [fetch(name, MULTI30K_URL.format(split=split, lang=lang), fname=f"{split}.{lang}.gz",
                   cache_dir=cache_dir) for split in MULTI30K_SPLITS for lang in ("en", "de")]
    return str(paths[0].parent)


def folder_name(cfg, split):
    """The name in the data folder of the split asked for as `split` (see the module docstring)."""
    split = canonical_split(split)
    return cfg["data"][CONFIGURED_SPLITS[split]] if split in CONFIGURED_SPLITS else split


def corpus_folder(data_dir, train_split):
    """`data_dir`, or its `raw/` subfolder (so the Multi30k checkout itself works)."""
    data_dir = Path(data_dir)
    if not any(data_dir.glob(f"{train_split}.*")) and (data_dir / "raw").is_dir():
        return data_dir / "raw"
    return data_dir


def split_source(data_dir, split, source_lang, target_lang):
    """The file(s) holding `split`: (source file, target file) or (tsv file,)."""
    for suffix in ("", ".gz"):
        source = data_dir / f"{split}.{source_lang}{suffix}"
        target = data_dir / f"{split}.{target_lang}{suffix}"
        if source.is_file() and target.is_file():
            return source, target
    if (data_dir / f"{split}.tsv").is_file():
        return (data_dir / f"{split}.tsv",)
    available = sorted({p.name.split(".")[0] for p in data_dir.iterdir() if p.is_file()})
    raise DataError(f"{data_dir}: no split '{split}': expected {split}.{source_lang}[.gz] + "
                    f"{split}.{target_lang}[.gz] or {split}.tsv (found: {', '.join(available) or 'no files'})")


def load(cfg, data_dir, splits):
    """Read the asked splits of `data_dir` (validated: a misaligned pair of files or a non-UTF-8 byte is a
    DataError). The config is only read."""
    data_cfg = cfg["data"]
    data = ParallelData(corpus_folder(data_dir, data_cfg["train_split"]))
    for split in splits:
        name = folder_name(cfg, split)
        files = split_source(data.data_dir, name, data_cfg["source_lang"], data_cfg["target_lang"])
        pairs, dropped = read_parallel(*files) if len(files) == 2 else read_parallel_tsv(files[0])
        if not pairs:
            raise DataError(f"{files[0]}: no sentence pairs; expected one sentence per line")
        if name == data_cfg["train_split"] and data_cfg["train_pairs"] > 0:
            pairs = pairs[: data_cfg["train_pairs"]]
        data.names[split], data.pairs[split], data.dropped[split], data.files[split] = name, pairs, dropped, files
    return data
