"""history.csv, the run's memory: written one row per epoch, read back, and the decisions taken from it.

The best checkpoint, early stopping and the learning-rate decay are pure functions of the rows, so a resumed run
decides exactly as an uninterrupted one would (`lstm_apps.training.RunMonitor` applies them after every epoch).
"""
import csv
import io
import os
from pathlib import Path

from lstm_apps.errors import ConfigError
from lstm_apps.run_dir import HISTORY_FILE


def read_history(history_path):
    """history.csv as a list of {column: float}; a missing file gives [] and a missing value ("NA") gives None."""
    if not Path(history_path).exists():
        return []
    with open(history_path, newline="") as f:
        return [{key: None if value in ("", "NA", None) else float(value) for key, value in row.items()
                 if key is not None}
                for row in csv.DictReader(f)]


def append_history(history_path, epoch, logs):
    """Add one epoch's row to history.csv and return the whole history (`read_history`).

    The first row writes the header: "epoch" and the sorted keys of `logs`. Later rows, in this session or a resumed
    one, keep that header's columns: a key the header lacks is dropped, a column the logs lack gets "NA" (a column
    that came or went between versions or sessions never shifts values under the wrong header). The file is
    rewritten beside and renamed, so a kill never leaves half a row."""
    path = Path(history_path)
    text = ""
    if path.exists():
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
    header = next(csv.reader(io.StringIO(text)), None)
    out = io.StringIO()
    writer = csv.writer(out)
    if not header:
        text, header = "", ["epoch", *sorted(logs)]
        writer.writerow(header)
    elif not text.endswith("\n"):
        out.write("\r\n")
    writer.writerow([epoch if column == "epoch" else _csv_value(logs.get(column)) for column in header])
    _write_text_atomic(path, text + out.getvalue())
    return read_history(path)


def keep_history_before(history_path, epoch):
    """Drop the rows of history.csv from `epoch` on (the epochs a resumed run is about to train again)."""
    path = Path(history_path)
    if not path.exists():
        return
    with open(path, newline="") as f:
        lines = list(csv.reader(f))
    if not lines:
        return
    column = lines[0].index("epoch")
    kept = [lines[0]] + [row for row in lines[1:] if row and int(float(row[column])) < epoch]
    if len(kept) < len(lines):
        out = io.StringIO()
        csv.writer(out).writerows(kept)
        _write_text_atomic(path, out.getvalue())


def _csv_value(value):
    """A logs value as CSVLogger wrote it: numbers as Python floats, None as NA, a list as "[a, b]"."""
    if value is None:
        return "NA"
    if isinstance(value, str):
        return value
    try:
        return repr(float(value))
    except (TypeError, ValueError):
        return f"[{', '.join(map(str, value))}]"


def _write_text_atomic(path, text):
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.replace(tmp, path)


def plot_learning_curve(run_dir):
    """learning_curve.png from history.csv (drawn on a bare Figure: no pyplot, so a notebook's backend is kept)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    run_dir = Path(run_dir)
    rows = read_history(run_dir / HISTORY_FILE)
    if not rows:
        return
    metrics = [k for k in rows[0] if not k.startswith("val_") and k not in ("epoch", "learning_rate", "epoch_seconds")]
    fig = Figure(figsize=(5 * len(metrics), 3.5))
    axes = fig.subplots(1, len(metrics), squeeze=False)
    epochs = [int(r["epoch"]) + 1 for r in rows]
    for ax, name in zip(axes[0], metrics):  # a missing value (None) leaves a gap in its line
        ax.plot(epochs, [r[name] for r in rows], label=f"train {name}")
        if f"val_{name}" in rows[0]:
            ax.plot(epochs, [r[f"val_{name}"] for r in rows], label=f"validation {name}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(name)
        ax.legend()
    fig.tight_layout()
    tmp = run_dir / ".learning_curve.tmp.png"
    fig.savefig(tmp, dpi=90)
    os.replace(tmp, run_dir / "learning_curve.png")


# --------------------------------------------------------------------------------------------- decisions
# Pure functions of history rows (`read_history`), each the bookkeeping of the Keras 3.15 callback it replaces, with
# that callback's semantics as this project configured it: min_delta 0 (strict improvement), no baseline, epoch 0
# on, cooldown 0, min_lr 0. A row whose monitored value is missing (None) is skipped, as Keras skips such an epoch.
MODES = ("min", "max")


def check_mode(mode):
    if mode not in MODES:
        raise ConfigError(f"train.monitor_mode: '{mode}' is not one of {', '.join(MODES)}")


def is_improvement(value, best, mode):
    """`value` strictly better than `best` (None: nothing yet, so any value is) in `mode` ("min" or "max")."""
    check_mode(mode)
    if best is None:
        return True
    return value < best if mode == "min" else value > best


def _monitored(rows, monitor):
    return [(int(row["epoch"]), row[monitor]) for row in rows if row.get(monitor) is not None]


def best_row(rows, monitor, mode):
    """The row of the best `monitor` value so far, or None when no row has one (ModelCheckpoint with
    save_best_only: a tie keeps the earlier epoch)."""
    best = None
    for row in rows:
        value = row.get(monitor)
        if value is not None and is_improvement(value, None if best is None else best[monitor], mode):
            best = row
    return best


def should_stop(rows, monitor, mode, patience):
    """Whether EarlyStopping(monitor, mode, patience) stops the run at the last of these epochs: `patience` epochs
    in a row without a strict improvement on the best value (never at epoch 0)."""
    best, wait = None, 0
    for epoch, value in _monitored(rows, monitor):
        wait += 1
        if is_improvement(value, best, mode):
            best, wait = value, 0
        elif wait >= patience and epoch > 0:
            return True
    return False


def decays(rows, patience, monitor="val_loss", mode="min"):
    """How many times ReduceLROnPlateau(monitor, patience=patience, cooldown=0, min_delta=0) has cut the learning
    rate after these epochs: once whenever `patience` epochs in a row since the best or the last cut were no
    strict improvement (every worse epoch when patience is 0)."""
    best, wait, count = None, 0, 0
    for _, value in _monitored(rows, monitor):
        if is_improvement(value, best, mode):
            best, wait = value, 0
        else:
            wait += 1
            if wait >= patience:
                count, wait = count + 1, 0
    return count


def decayed_learning_rate(rows, initial_rate, factor, patience, monitor="val_loss"):
    """The learning rate of the epoch after these rows: initial_rate x factor^decays(rows)."""
    return initial_rate * factor ** decays(rows, patience, monitor)
