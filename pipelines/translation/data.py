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

# Public copy for users with internet: the raw files at a fixed commit of the official repository. Their sums are
# those of the git blobs at that commit (= master on 2026-07-07), byte for byte ../shared/data/multi30k/raw.
MULTI30K_COMMIT = "a3d2e0d26b56f3846f66a952536ffed4e401d05a"
MULTI30K_URL = f"https://github.com/multi30k/dataset/raw/{MULTI30K_COMMIT}/data/task1/raw/{{split}}.{{lang}}.gz"
MULTI30K_SPLITS = ("train", "val", "test_2016_flickr", "test_2017_flickr", "test_2017_mscoco", "test_2018_flickr")
MULTI30K_SHA256 = {
    "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
    "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    "test_2017_flickr.en.gz": "76a444ee25172e72695cddb13ae4a3bda59430617be88e0bb46b60504f054074",
    "test_2017_flickr.de.gz": "a2c89666db00c495cd8513b9d708d5a3acc205d7de312ef2bf5fb7ebc1540aee",
    "test_2017_mscoco.en.gz": "aab300bfb4427697987e02cd0aacd44bfe8aa50456231b6474c08038bbed2b58",
    "test_2017_mscoco.de.gz": "799e4854c25d601cb6cb6be29eabe5667734c61ace2f495e03e429031a0bc338",
    "test_2018_flickr.en.gz": "ef4f4844037d4c5dea75c9a8ed5fd78905967a26f67c255e230cc9780032654d",
    "test_2018_flickr.de.gz": "ddd0130c7d97482dc5197a02141dae8dd79f20f03586c480d675c09a32daf608",
}
# dataset -> file name -> (url, sha256); lstm_apps.inputs.download.fetch checks the sum
DOWNLOADS = {"multi30k": {f"{split}.{lang}.gz": (MULTI30K_URL.format(split=split, lang=lang),
                                                 MULTI30K_SHA256[f"{split}.{lang}.gz"])
                          for split in MULTI30K_SPLITS for lang in ("en", "de")}}
CONFIGURED_SPLITS = {"train": "train_split", "valid": "valid_split", "test": "test_split"}  # CLI name -> data.* key


@dataclass
class ParallelData:
    """The pairs of the splits asked for, keyed by the name they were asked by (`train`, `valid`, ...)."""
    data_dir: Path                               # the folder read (data.dir, or its raw/ subfolder)
    names: dict = field(default_factory=dict)    # split -> its name in the folder (e.g. valid -> val)
    pairs: dict = field(default_factory=dict)    # split -> [(source, target)]
    dropped: dict = field(default_factory=dict)  # split -> pairs left out because one side was empty
    files: dict = field(default_factory=dict)    # split -> the file(s) it came from, for messages
    prepared: dict = field(default_factory=dict)  # split -> folder of prepared shards (pipeline.prepare_splits)
    subwords: Path = None                        # with prepared shards: the folder of the subword models they use

    @property
    def facts(self):
        """What the run's metadata records: the folder read, and the pairs found per split."""
        return {"folder": str(self.data_dir), "splits": dict(self.names),
                "pairs": {split: len(pairs) for split, pairs in self.pairs.items()},
                "dropped_empty": dict(self.dropped)}


def download(name, cache_dir=None):
    if name not in DOWNLOADS:
        raise DataError(f"data.dataset: unknown dataset '{name}' (known: {', '.join(DOWNLOADS)})")
    paths = [fetch(name, url, sha256, fname=fname, cache_dir=cache_dir)
             for fname, (url, sha256) in DOWNLOADS[name].items()]
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
    available = sorted({p.name.split(".")[0] for p in data_dir.iterdir()
                        if p.is_file() and not p.name.startswith(".")})
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
