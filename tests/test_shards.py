"""lstm_apps.inputs.shards: prepare once (atomic shards, resumable, rebuilt when its sources change), read back."""
import json

import pytest
import tensorflow as tf

from lstm_apps.errors import DataError
from lstm_apps.inputs import shards


def encode(number):
    feature = {"n": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(number)]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def parse(record):
    return tf.io.parse_single_example(record, {"n": tf.io.FixedLenFeature([], tf.int64)})["n"]


def numbers(folder, **options):
    return [int(n) for n in shards.read(folder, parse, **options)]


def prepare(folder, sources, encode, made_of, **options):
    return shards.prepare(folder, sources, shards.one_by_one(sources, encode), made_of, **options)


class Interrupted(Exception):
    pass


def test_prepared_shards_read_back_in_order_and_are_reused(tmp_path):
    made_of = {"settings": 1}
    manifest = prepare(tmp_path, list(range(25)), encode, made_of, examples_per_shard=10)
    assert manifest.shards == ["shard-00000.tfrecord", "shard-00001.tfrecord", "shard-00002.tfrecord"]
    assert manifest.examples == 25 and manifest.complete
    assert numbers(tmp_path) == list(range(25))
    calls = []
    prepare(tmp_path, list(range(25)), lambda n: calls.append(n) or encode(n), made_of, examples_per_shard=10)
    assert calls == []  # complete and made of the same: nothing encoded again


def test_an_interrupted_prepare_keeps_its_finished_shards_and_carries_on(tmp_path):
    def failing_at_15(n):
        if n == 15:
            raise Interrupted
        return encode(n)

    with pytest.raises(Interrupted):
        prepare(tmp_path, list(range(25)), failing_at_15, {"s": 1}, examples_per_shard=10)
    manifest = json.loads((tmp_path / shards.MANIFEST_FILE).read_text())
    assert manifest["shards"] == ["shard-00000.tfrecord"] and not manifest["complete"]
    with pytest.raises(DataError, match="not a complete prepared dataset"):
        shards.read(tmp_path, parse)
    encoded = []
    prepare(tmp_path, list(range(25)), lambda n: encoded.append(n) or encode(n), {"s": 1}, examples_per_shard=10)
    assert encoded == list(range(10, 25)) and numbers(tmp_path) == list(range(25))
    assert not list(tmp_path.glob(".tmp-*"))


def test_shards_made_of_other_sources_are_rebuilt(tmp_path):
    source = tmp_path / "source.txt"
    source.write_text("one")
    prepare(tmp_path / "cache", [1, 2, 3], encode, shards.fingerprint([source], {"k": 1}))
    source.write_text("changed")  # another size: another fingerprint
    manifest = prepare(tmp_path / "cache", [4, 5], encode, shards.fingerprint([source], {"k": 1}))
    assert manifest.examples == 2 and numbers(tmp_path / "cache") == [4, 5]
    manifest = prepare(tmp_path / "cache", [6], encode, shards.fingerprint([source], {"k": 2}))
    assert numbers(tmp_path / "cache") == [6]


def test_a_bad_source_stops_the_prepare_or_is_skipped_and_counted(tmp_path):
    def encode_or_reject(n):
        if n == 3:
            raise DataError(f"clip-{n}.wav: truncated")
        return encode(n)

    with pytest.raises(DataError, match="clip-3.wav"):
        prepare(tmp_path / "strict", list(range(6)), encode_or_reject, {}, examples_per_shard=4)
    assert json.loads((tmp_path / "strict" / shards.MANIFEST_FILE).read_text())["shards"] == []
    manifest = prepare(tmp_path / "lenient", list(range(6)), encode_or_reject, {}, examples_per_shard=4,
                              skip_bad=True)
    assert manifest.skipped == [["3", "clip-3.wav: truncated"]] and manifest.examples == 5
    assert numbers(tmp_path / "lenient") == [0, 1, 2, 4, 5]


def test_each_pipeline_reads_its_own_shards_and_a_shuffle_keeps_every_example(tmp_path):
    prepare(tmp_path, list(range(40)), encode, {}, examples_per_shard=10)
    first, second = numbers(tmp_path, num_pipelines=2, pipeline=0), numbers(tmp_path, num_pipelines=2, pipeline=1)
    assert not set(first) & set(second) and sorted(first + second) == list(range(40))
    shuffled = numbers(tmp_path, shuffle_buffer=8, seed=1)
    assert shuffled != list(range(40)) and sorted(shuffled) == list(range(40))
