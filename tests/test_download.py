"""lstm_apps.inputs.download.fetch checks downloads against pinned SHA-256 sums (no network: file:// origins,
which keras.utils.get_file reads with urllib), and every dataset the tasks download has a pinned sum."""
import hashlib
import io
import re
import tarfile
import zipfile
from pathlib import Path

import pytest

from lstm_apps.errors import DataError
from lstm_apps.inputs.download import archive_path, cache_folder, fetch
from pipelines.keywords import data as keywords_data
from pipelines.language_model import data as language_model_data
from pipelines.translation import data as translation_data

from conftest import shared

CONTENT = b"line one\nline two\n" * 500


def sha(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def cache(tmp_path):
    folder = tmp_path / "cache"
    folder.mkdir()
    return str(folder)


def served(tmp_path, name, data):
    """A file:// origin serving `data`."""
    origin = tmp_path / "origin"
    origin.mkdir(exist_ok=True)
    (origin / name).write_bytes(data)
    return (origin / name).as_uri()


def test_the_right_sum_downloads_into_the_named_cache_folder(tmp_path, cache):
    url = served(tmp_path, "corpus.txt", CONTENT)
    path = fetch("demo", url, sha(CONTENT), fname="corpus.txt", cache_dir=cache)
    assert path == archive_path(cache_folder("demo", cache), url, fname="corpus.txt")
    assert path.parent.name == "lstm_apps_demo" and path.read_bytes() == CONTENT
    assert fetch("demo", url, sha(CONTENT), fname="corpus.txt", cache_dir=cache) == path  # reused


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_a_pinned_archive_is_extracted(tmp_path, cache, kind):
    buffer = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("release-1.0/data.txt", CONTENT)
    else:
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            member = tarfile.TarInfo("release-1.0/data.txt")
            member.size = len(CONTENT)
            archive.addfile(member, io.BytesIO(CONTENT))
    url = served(tmp_path, f"v1.0.{kind}", buffer.getvalue())
    folder = fetch("demo", url, sha(buffer.getvalue()), extract=True, cache_dir=cache)
    assert (folder / "release-1.0" / "data.txt").read_bytes() == CONTENT
    assert archive_path(cache_folder("demo", cache), url, extract=True).read_bytes() == buffer.getvalue()


def test_a_truncated_download_is_one_line_and_leaves_nothing_usable(tmp_path, cache):
    url = served(tmp_path, "corpus.txt", CONTENT[:1000])  # what a cut connection leaves
    target = archive_path(cache_folder("demo", cache), url, fname="corpus.txt")
    with pytest.raises(DataError) as caught:
        fetch("demo", url, sha(CONTENT), fname="corpus.txt", cache_dir=cache)
    message = str(caught.value)
    assert "\n" not in message
    assert str(target) in message and sha(CONTENT) in message and sha(CONTENT[:1000]) in message
    assert re.search(r"expected [0-9a-f]{64}.*truncated or altered.*deleted.*--data-dir", message)
    assert not target.exists()
    with pytest.raises(DataError, match="has sha256"):  # a later call does not accept it either
        fetch("demo", url, sha(CONTENT), fname="corpus.txt", cache_dir=cache)
    url = served(tmp_path, "corpus.txt", CONTENT)  # the origin is whole again: the next call downloads it
    assert fetch("demo", url, sha(CONTENT), fname="corpus.txt", cache_dir=cache).read_bytes() == CONTENT


def test_a_cached_file_altered_on_disk_is_never_used(tmp_path, cache):
    url = served(tmp_path, "corpus.txt", CONTENT)
    path = fetch("demo", url, sha(CONTENT), fname="corpus.txt", cache_dir=cache)
    path.write_bytes(CONTENT + b"tampered\n")
    assert fetch("demo", url, sha(CONTENT), fname="corpus.txt", cache_dir=cache).read_bytes() == CONTENT  # again

    path.write_bytes(CONTENT[:10])
    other = b"something else\n"
    served(tmp_path, "corpus.txt", other)  # the origin changed too: refused, not used
    with pytest.raises(DataError, match=f"has sha256 {sha(other)}, expected {sha(CONTENT)}"):
        fetch("demo", url, sha(CONTENT), fname="corpus.txt", cache_dir=cache)
    assert not path.exists()

    path.write_bytes(CONTENT[:10])
    (tmp_path / "origin" / "corpus.txt").unlink()  # offline: refused, and the bad copy is gone
    with pytest.raises(DataError, match="could not download demo from .* pass --data-dir"):
        fetch("demo", url, sha(CONTENT), fname="corpus.txt", cache_dir=cache)
    assert not path.exists()


def test_an_unpinned_download_says_so_and_gives_its_sum(tmp_path, cache, capsys):
    url = served(tmp_path, "corpus.txt", CONTENT)
    assert fetch("demo", url, None, fname="corpus.txt", cache_dir=cache).read_bytes() == CONTENT
    notice = capsys.readouterr().err
    assert f"no sha256 is pinned for {url}" in notice and sha(CONTENT) in notice


def test_a_malformed_pin_is_a_programming_error(tmp_path, cache):
    with pytest.raises(ValueError, match="64 lowercase hex digits"):
        fetch("demo", served(tmp_path, "corpus.txt", CONTENT), sha(CONTENT).upper(), cache_dir=cache)


MODULES = {"keywords": keywords_data, "language_model": language_model_data, "translation": translation_data}


def pins(module):
    """(dataset, url, sha256) of every download of a task data module."""
    for dataset, entry in module.DOWNLOADS.items():
        for item in entry.values() if isinstance(entry, dict) else [entry]:
            yield dataset, item[0], item[-1]


@pytest.mark.parametrize("task", MODULES)
def test_every_download_has_a_pinned_sha256_or_says_why_not(task):
    module = MODULES[task]
    unpinned = getattr(module, "UNPINNED", {})
    found = list(pins(module))
    assert found
    for dataset, url, sha256 in found:
        assert url.startswith(("https://", "http://")), url
        if sha256 is None:
            assert dataset in unpinned and len(unpinned[dataset]) > 20, f"{task} {dataset}: {url} has no sha256"
        else:
            assert re.fullmatch(r"[0-9a-f]{64}", sha256), f"{task} {dataset}: {url}: {sha256!r}"
    assert set(unpinned) <= {dataset for dataset, _, sha256 in found if sha256 is None}, "stale UNPINNED entry"


def test_ptb_and_multi30k_download_with_their_real_pins(tmp_path, cache, monkeypatch):
    """The task download() functions with the real sums, fed file:// copies of ../shared/data (those plain files
    are byte for byte what the pinned URLs serve)."""
    ptb, multi30k = shared("ptb"), shared("multi30k") / "raw"
    monkeypatch.setitem(language_model_data.DOWNLOADS, "ptb", {
        split: ((ptb / f"ptb.{split}.txt").as_uri(), sha256)
        for split, (_, sha256) in language_model_data.DOWNLOADS["ptb"].items()})
    folder = language_model_data.download("ptb", cache_dir=cache)
    assert sorted(p.name for p in (tmp_path / "cache").rglob("*.txt")) == [
        "ptb.test.txt", "ptb.train.txt", "ptb.valid.txt"]
    assert language_model_data.detect_layout(folder) == "ptb"
    monkeypatch.setitem(translation_data.DOWNLOADS, "multi30k", {
        name: ((multi30k / name).as_uri(), sha256)
        for name, (_, sha256) in translation_data.DOWNLOADS["multi30k"].items()})
    folder = translation_data.download("multi30k", cache_dir=cache)
    assert sorted(p.name for p in Path(folder).glob("*.gz")) == sorted(p.name for p in multi30k.glob("*"))
