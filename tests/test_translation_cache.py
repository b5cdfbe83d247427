"""Translation from prepared shards (data.cache): the subword models and ids of the files, the same training as
from the files, a bounded shuffle buffer that still serves every pair once an epoch, a changed file rebuilds."""
import gzip
import shutil

import tensorflow as tf

from lstm_apps.config import build_config
from lstm_apps.inputs.subwords import SubwordTokenizer, train_sentencepiece
from pipelines.translation import data as data_lib
from pipelines.translation import pipeline
from pipelines.translation.task import TASK
from conftest import assert_cache_trains_like_the_files, shared

PAIRS = 800  # of Multi30k's training pairs (and all 1,014 validation pairs)
SMALL = ["data.train_pairs=800", "tokenizer.source_vocab=300", "tokenizer.target_vocab=300"]


def multi30k_copy(tmp_path):
    """Real copies (the cache fingerprints each file's size and time) of Multi30k's train and val files."""
    folder = tmp_path / "multi30k"
    folder.mkdir()
    for split in ("train", "val"):
        for lang in ("en", "de"):
            shutil.copy2(shared("multi30k") / "raw" / f"{split}.{lang}.gz", folder)
    return folder


def config(cache, *overrides):
    return build_config(TASK.presets_dir, "quick", overrides=[f"data.cache={cache}", *SMALL, *overrides])


def prepared(tmp_path, cfg, folder):
    data = data_lib.load(cfg, folder, pipeline.STREAMED_SPLITS)
    return data, pipeline.prepare_splits(data, cfg, tmp_path / "cache", pipeline.STREAMED_SPLITS)


def pairs_of(dataset):
    return [(tuple(s), tuple(t)) for s, t in dataset.as_numpy_iterator()]


def test_prepared_ids_are_those_of_the_files_with_the_subword_models_a_run_trains(tmp_path):
    folder = multi30k_copy(tmp_path)
    cfg = config(tmp_path / "cache")
    data, manifests = prepared(tmp_path, cfg, folder)
    assert {split: m.examples for split, m in manifests.items()} == {"train": PAIRS, "valid": 1014}
    for index, side in enumerate(("source", "target")):  # what prepare_run would train from the files
        trained = train_sentencepiece([p[index] for p in data.pairs["train"]], tmp_path / f"{side}.model", 300)
        assert (data.subwords / pipeline.SUBWORD_FILES[side]).read_bytes() == trained
    tokenizers = [SubwordTokenizer((data.subwords / name).read_bytes()) for name in pipeline.SUBWORD_FILES.values()]
    for split in pipeline.STREAMED_SPLITS:
        sides = [tokenizers[i].tokenize(tf.constant([p[i] for p in data.pairs[split]])).to_list() for i in (0, 1)]
        expected = [(tuple(s), tuple(t)) for s, t in zip(*sides)]
        assert pairs_of(pipeline.prepared_pairs(data.prepared[split], cfg, shuffle=False)[0]) == [
            pair for pair in expected if max(map(len, pair)) < 48]
    shard = data.prepared["train"] / manifests["train"].shards[0]
    written = shard.stat().st_mtime_ns
    prepared(tmp_path, cfg, folder)
    assert shard.stat().st_mtime_ns == written  # same files, same settings: nothing written again


def test_a_bounded_shuffle_buffer_serves_every_pair_once_per_epoch_in_new_orders(tmp_path):
    cfg = config(tmp_path / "cache", "train.shuffle_buffer=64")
    data, _ = prepared(tmp_path, cfg, multi30k_copy(tmp_path))
    dataset, lengths, too_long = pipeline.prepared_pairs(data.prepared["train"], cfg, shuffle=True)
    in_order = sorted(pairs_of(pipeline.prepared_pairs(data.prepared["train"], cfg, shuffle=False)[0]))
    epochs = [pairs_of(dataset) for _ in range(3)]
    assert len(in_order) == len(lengths) == PAIRS - too_long
    assert all(sorted(epoch) == in_order for epoch in epochs) and len({tuple(e) for e in epochs}) == 3


def test_a_changed_training_file_retrains_the_subwords_and_rebuilds_the_shards(tmp_path):
    folder = multi30k_copy(tmp_path)
    cfg = config(tmp_path / "cache")
    data, _ = prepared(tmp_path, cfg, folder)
    models = {name: (data.subwords / name).read_bytes() for name in pipeline.SUBWORD_FILES.values()}
    for lang, line in (("en", "A zebra juggles seven violins."), ("de", "Ein Zebra jongliert sieben Geigen.")):
        path = folder / f"train.{lang}.gz"
        lines = gzip.decompress(path.read_bytes()).decode("utf-8").splitlines()
        path.write_bytes(gzip.compress("\n".join([line, *lines]).encode("utf-8") + b"\n"))
    data, manifests = prepared(tmp_path, cfg, folder)
    assert data.pairs["train"][0][0] == "A zebra juggles seven violins." and manifests["train"].examples == PAIRS
    assert any((data.subwords / name).read_bytes() != model for name, model in models.items())
    tokenizer = SubwordTokenizer((data.subwords / "source.model").read_bytes())
    first = next(iter(pipeline.prepared_pairs(data.prepared["train"], cfg, shuffle=False)[0]))[0]
    assert tokenizer.detokenize(first[None]).numpy()[0].decode() == "A zebra juggles seven violins."


def test_training_from_the_cache_equals_training_from_the_files(tmp_path):
    assert_cache_trains_like_the_files("translation", multi30k_copy(tmp_path), tmp_path,
                                       [*SMALL, "model.units=32", "model.embedding_dim=32"])
    for name in pipeline.SUBWORD_FILES.values():  # the run copied the cache's models: those the files give
        assert (tmp_path / "files" / name).read_bytes() == (tmp_path / "cached" / name).read_bytes()
