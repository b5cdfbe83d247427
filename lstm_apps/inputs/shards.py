"""Prepared datasets: examples encoded once into sharded TFRecord files, then streamed with bounded memory.

The tensorflow/datasets habit: decoding, resampling and tokenizing happen once, in `prepare`; training reads the
shards with interleave and a bounded shuffle buffer (`read`). A folder holds

    manifest.json             what made the shards (`fingerprint`: source files' sizes and times, the settings
                              that change the encoding), the shards finished so far, and `complete`
    shard-00000.tfrecord ...  `examples_per_shard` serialized examples each (the last one fewer)

A shard is written beside and renamed into place, and the manifest (written atomically after every shard) lists
only renamed shards, so a killed prepare leaves no half-written shard that counts, and the next one carries on
after the last finished shard. A folder made from other sources or settings is rebuilt, never reused.
"""
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from lstm_apps.errors import DataError

MANIFEST_FILE = "manifest.json"
FORMAT = 1  # bump when the manifest or the shard layout changes


def fingerprint(files, settings):
    """What the shards depend on: every source file's path, size and modification time, and `settings` (a
    JSON-serializable dict of the config values that change what is encoded)."""
    sources = []
    for path in files:
        stat = Path(path).stat()
        sources.append([str(path), stat.st_size, stat.st_mtime_ns])
    return {"format": FORMAT, "settings": settings, "sources": sources}


@dataclass
class Manifest:
    fingerprint: dict
    shards: list = field(default_factory=list)  # finished shard file names, in order
    examples: int = 0                           # examples in the finished shards
    skipped: list = field(default_factory=list)  # [source, reason] of sources left out (skip_bad=True)
    complete: bool = False

    def save(self, folder):
        tmp = Path(folder) / f".tmp-{MANIFEST_FILE}"
        tmp.write_text(json.dumps(self.__dict__, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, Path(folder) / MANIFEST_FILE)

    @classmethod
    def load(cls, folder):
        path = Path(folder) / MANIFEST_FILE
        if not path.exists():
            return None
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, TypeError):
            return None  # unreadable: rebuilt


def prepare(folder, sources, encoded, made_of, examples_per_shard=1000, skip_bad=False, progress=None):
    """Encode `sources` (a list) into shards in `folder`, unless a complete set made of the same `made_of` (a
    `fingerprint`) is there. `encoded(start)` yields, in order, one item per source of `sources[start:]`: its
    serialized example (bytes), or a DataError naming it (a parallel tf.data pipeline can feed it; `one_by_one`
    wraps a per-source function). Resumes an interrupted prepare of the same fingerprint after its last finished
    shard. A DataError stops the prepare (nothing half-written counts), or with `skip_bad` leaves that source out
    and is counted in the manifest's `skipped`. `progress(done, total)` is called after every shard. Returns the
    Manifest."""
    import tensorflow as tf

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = Manifest.load(folder)
    if manifest is not None and manifest.fingerprint == made_of and manifest.complete:
        return manifest
    if manifest is None or manifest.fingerprint != made_of:  # made of something else (or nothing): start over
        for stale in [*folder.glob("shard-*.tfrecord"), *folder.glob(".tmp-*")]:
            stale.unlink()
        manifest = Manifest(made_of)
        manifest.save(folder)
    skipped_sources = {source for source, _ in manifest.skipped}
    # the sources already in finished shards: examples_per_shard per shard, skipped ones taking no place
    position = _position_after(sources, manifest, skipped_sources)
    items = iter(encoded(position))
    while position < len(sources):
        name = f"shard-{len(manifest.shards):05d}.tfrecord"
        tmp = folder / f".tmp-{name}"
        written = 0
        with tf.io.TFRecordWriter(str(tmp)) as writer:
            while position < len(sources) and written < examples_per_shard:
                item = next(items)
                position += 1
                if isinstance(item, DataError):
                    if not skip_bad:
                        raise item
                    manifest.skipped.append([str(sources[position - 1]), str(item)])
                    continue
                writer.write(item)
                written += 1
        if written:
            os.replace(tmp, folder / name)
            manifest.shards.append(name)
            manifest.examples += written
        else:
            tmp.unlink()
        manifest.save(folder)
        if progress is not None:
            progress(position, len(sources))
    manifest.complete = True
    manifest.save(folder)
    return manifest


def one_by_one(sources, encode):
    """An `encoded` for `prepare` from `encode(source)` -> bytes (raising DataError for a bad source)."""
    def encoded(start):
        for source in sources[start:]:
            try:
                yield encode(source)
            except DataError as error:
                yield error
    return encoded


def _position_after(sources, manifest, skipped_sources):
    """The index in `sources` after the last source of the manifest's finished shards."""
    remaining = manifest.examples
    for position, source in enumerate(sources):
        if remaining == 0:
            return position
        if str(source) not in skipped_sources:
            remaining -= 1
    return len(sources)


def read(folder, parse, shuffle_buffer=0, seed=None, num_pipelines=1, pipeline=0, cycle_length=4):
    """The examples of a complete prepared folder as a tf.data.Dataset, `parse`d: in their prepared order, or with
    `shuffle_buffer` > 0 the shard files shuffled and interleaved (`cycle_length` read in parallel), then the
    examples shuffled in a buffer of that many. `num_pipelines` > 1: this pipeline reads only every num_pipelines-th shard from `pipeline` on (each
    worker its own shards). Memory is bounded by the buffer, whatever the dataset's size."""
    import tensorflow as tf

    manifest = Manifest.load(folder)
    if manifest is None or not manifest.complete:
        raise DataError(f"{folder}: not a complete prepared dataset (no finished {MANIFEST_FILE}); run prepare")
    names = [str(Path(folder) / name) for name in manifest.shards][pipeline::num_pipelines]
    if not names:
        raise DataError(f"{folder}: {len(manifest.shards)} shards cannot be split among {num_pipelines} pipelines")
    if not shuffle_buffer:  # evaluation: the examples in the order they were prepared
        return tf.data.TFRecordDataset(names).map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    files = tf.data.Dataset.from_tensor_slices(names).shuffle(len(names), seed=seed, reshuffle_each_iteration=True)
    examples = files.interleave(tf.data.TFRecordDataset, cycle_length=min(cycle_length, len(names)),
                                num_parallel_calls=tf.data.AUTOTUNE, deterministic=seed is not None)
    return (examples.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
            .map(parse, num_parallel_calls=tf.data.AUTOTUNE))
