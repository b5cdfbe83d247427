"""Parallel corpora: per split, two line-aligned files `{split}.{lang}` (plain or .gz, the Multi30k raw layout) or
one `{split}.tsv` (source<TAB>target). Empty pairs are dropped and counted.
"""
from dataclasses import dataclass, field
from pathlib import Path

from lstm_apps.errors import DataError
from lstm_apps.inputs.download import fetch, resolve_data_dir
from lstm_apps.inputs.text import read_parallel, read_parallel_tsv

MULTI30K_URL = "https://github.com/multi30k/dataset/raw/master/data/task1/raw/{split}.{lang}.gz"
MULTI30K_SPLITS = ("train", "val", "test_2016_flickr", "test_2017_flickr", "test_2017_mscoco", "test_2018_flickr")


@dataclass
class ParallelData:
    data_dir: Path
    pairs: dict = field(default_factory=dict)    # split -> [(source, target)]
    dropped: dict = field(default_factory=dict)  # split -> pairs left out because one side was empty
    files: dict = field(default_factory=dict)    # split -> the file(s) it came from, for messages


def download(name, cache_dir=None):
    if name != "multi30k":
        raise DataError(f"data.dataset: unknown dataset '{name}' (known: multi30k)")
    paths = [fetch(name, MULTI30K_URL.format(split=split, lang=lang), fname=f"{split}.{lang}.gz",
                   cache_dir=cache_dir) for split in MULTI30K_SPLITS for lang in ("en", "de")]
    return str(paths[0].parent)


def resolve_folder(data_cfg):
    """data.dir (or its `raw/` subfolder, so the Multi30k checkout itself works)."""
    data_dir = resolve_data_dir(data_cfg, download)
    if not any(data_dir.glob(f"{data_cfg['train_split']}.*")) and (data_dir / "raw").is_dir():
        data_dir = data_dir / "raw"
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


def load(cfg, splits):
    """Read the asked splits (validated: a misaligned pair of files or a non-UTF-8 byte is a DataError)."""
    data_cfg = cfg["data"]
    data_dir = resolve_folder(data_cfg)
    data = ParallelData(data_dir)
    for split in splits:
        files = split_source(data_dir, split, data_cfg["source_lang"], data_cfg["target_lang"])
        pairs, dropped = read_parallel(*files) if len(files) == 2 else read_parallel_tsv(files[0])
        if not pairs:
            raise DataError(f"{files[0]}: no sentence pairs; expected one sentence per line")
        if split == data_cfg["train_split"] and data_cfg["train_pairs"] > 0:
            pairs = pairs[: data_cfg["train_pairs"]]
        data.pairs[split], data.dropped[split], data.files[split] = pairs, dropped, files
    return data
