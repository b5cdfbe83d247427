"""Public datasets for users with internet: fetched once into the Keras cache (`$KERAS_HOME` or ~/.keras)."""
from pathlib import Path

from lstm_apps.errors import DataError


def fetch(name, url, extract=False, fname=None, cache_dir=None):
    """Download `url` (and extract it) into datasets/lstm_apps_NAME; reused when present. Returns the local path;
    a failure is one DataError line that says to pass --data-dir instead."""
    import keras

    try:
        path = keras.utils.get_file(fname=fname, origin=url, extract=extract,
                                    cache_subdir=f"datasets/lstm_apps_{name}", cache_dir=cache_dir)
    except Exception as error:
        raise DataError(f"could not download {name} from {url} ({error}); pass --data-dir with a local copy") \
            from None
    return Path(path)


def resolve_data_dir(data_cfg, download):
    """`data.dir`, or the download of `data.dataset` when it is empty (written back into the config); must be a
    folder."""
    if not data_cfg["dir"]:
        data_cfg["dir"] = download(data_cfg["dataset"])
    data_dir = Path(data_cfg["dir"])
    if not data_dir.is_dir():
        raise DataError(f"data.dir {data_dir}: no such folder")
    return data_dir
