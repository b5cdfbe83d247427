"""Public datasets for users with internet: fetched once into the Keras cache (`$KERAS_HOME` or ~/.keras) and
checked against a pinned SHA-256 sum, so a truncated or altered download is one DataError line, never a dataset.

keras.utils.get_file (Keras 3.15) hashes a cached file on every call and downloads it again when the sum is wrong;
a fresh download with the wrong sum raises, and `fetch` then deletes it and names the file and both sums.
"""
import hashlib
import os
import re
import sys
import tempfile
import urllib.parse
from pathlib import Path

from lstm_apps.errors import DataError

SHA256 = re.compile(r"^[0-9a-f]{64}$")


def sha256_of(path, chunk_size=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_folder(name, cache_dir=None):
    """datasets/lstm_apps_NAME under `cache_dir` or the Keras home (/tmp/.keras when that is not writable, as
    get_file does). fetch passes it to get_file as an absolute cache_subdir, so get_file writes exactly there."""
    if cache_dir is None:  # Keras's home: $KERAS_HOME, else ~/.keras
        cache_dir = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    base = os.path.expanduser(cache_dir)
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    return Path(base) / "datasets" / f"lstm_apps_{name}"


def archive_path(folder, url, extract=False, fname=None):
    """The file get_file downloads `url` into (Keras 3.15's naming: an archive to extract gets an `_archive`
    suffix unless `fname` has a dot)."""
    name = fname or os.path.basename(urllib.parse.urlsplit(url).path)
    return folder / (f"{name}_archive" if extract and not (fname and "." in fname) else name)


def fetch(name, url, sha256, extract=False, fname=None, cache_dir=None):
    """Download `url` (and extract it) into datasets/lstm_apps_NAME; reused while its SHA-256 is `sha256`.
    Returns the local path. `sha256=None` (an entry with no published sum) is fetched unverified with a notice
    that gives the sum found. A failure is one DataError line that says to pass --data-dir instead."""
    import keras

    if sha256 is not None and not SHA256.match(sha256):
        raise ValueError(f"{name}: pinned sha256 for {url} must be 64 lowercase hex digits, not {sha256!r}")
    folder = cache_folder(name, cache_dir)
    target = archive_path(folder, url, extract, fname)
    try:
        path = keras.utils.get_file(fname=fname, origin=url, extract=extract, file_hash=sha256,
                                    hash_algorithm="sha256", cache_subdir=str(folder), cache_dir=cache_dir)
    except Exception as error:
        found = sha256_of(target) if sha256 is not None and target.is_file() else None
        if found is not None and found != sha256:
            try:
                target.unlink()
                what = "so it was deleted; run again to download it anew"
            except OSError:
                what = f"delete {target}"
            raise DataError(f"{name}: {target} (from {url}) has sha256 {found}, expected {sha256}: the download is "
                            f"truncated or altered, {what}, or pass --data-dir with a local copy") from None
        reason = " ".join(str(error).split())
        raise DataError(f"could not download {name} from {url} ({reason}); pass --data-dir with a local copy") \
            from None
    if sha256 is None:
        print(f"notice: {name}: no sha256 is pinned for {url}, so {target} is not verified (its sha256 is "
              f"{sha256_of(target)}); pass --data-dir with a checked copy to be sure", file=sys.stderr)
    return Path(path)
