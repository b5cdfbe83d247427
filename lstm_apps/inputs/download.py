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
