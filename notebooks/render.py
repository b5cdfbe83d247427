"""Execute the notebooks with the test suite's small parameters and save them with their outputs, normalised.

    python notebooks/render.py                      # all four
    python notebooks/render.py translation          # one

GitHub then shows the plots, scores and captions as the keras-io tutorials do. Normalising keeps the committed
outputs readable and free of this machine: absolute paths become `../shared/data`, `lstm-apps` or `WORK_DIR`, a
progress bar keeps only its final state, stderr warnings and execution timestamps are dropped. The suite
(`tests/test_notebooks.py`) executes the notebooks fresh with the same `PARAMETERS` and checks their figures.
"""
import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent
REPO = NOTEBOOKS.parent
SHARED_DATA = Path(os.environ.get("LSTM_APPS_SHARED_DATA", REPO.parent / "shared" / "data"))

# notebook -> its LSTM_APPS_* environment: data folders (under the shared data root) and small parameters
PARAMETERS = {
    "speech_keywords": {"LSTM_APPS_FSDD": SHARED_DATA / "fsdd", "LSTM_APPS_NOTEBOOK_EPOCHS": 2},
    "language_model": {"LSTM_APPS_PTB": SHARED_DATA / "ptb", "LSTM_APPS_NOTEBOOK_EPOCHS": 2,
                       "LSTM_APPS_NOTEBOOK_TRAIN_TOKENS": 150000},
    "translation": {"LSTM_APPS_MULTI30K": SHARED_DATA / "multi30k" / "raw", "LSTM_APPS_NOTEBOOK_TRAIN_PAIRS": 2000,
                    "LSTM_APPS_NOTEBOOK_EPOCHS": 2, "LSTM_APPS_NOTEBOOK_HELD_OUT": 64},
    "video_captioning": {"LSTM_APPS_NOTEBOOK_CLIPS": 6, "LSTM_APPS_NOTEBOOK_EPOCHS": 3},
}
STDERR_NOISE = re.compile(r"warning|warn\(|absl|tensorflow|cuda|oneDNN", re.IGNORECASE)
# TensorFlow's Python logging, and its C++ runtime's absl lines (the kernel captures file descriptor 2 too)
LOG_LINE = re.compile(r"^((INFO|WARNING):(tensorflow|absl):|[IWEF]\d{4} [\d:.]+\s+\d+ \S+:\d+\]|WARNING: All log messages)")


def execute(name, work_dir, timeout=900):
    """Run notebooks/NAME.ipynb in the notebooks folder (as Jupyter does) with its PARAMETERS and `work_dir`;
    returns the executed notebook. A failing cell raises nbclient's CellExecutionError."""
    import nbclient
    import nbformat

    environment = {key: str(value) for key, value in PARAMETERS[name].items()}
    environment["LSTM_APPS_NOTEBOOK_WORK_DIR"] = str(work_dir)
    saved = {key: os.environ.get(key) for key in environment}
    os.environ.update(environment)
    try:
        nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    finally:
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
    return nb


def final_state(text):
    """What a terminal shows after carriage returns and backspaces have overwritten a progress bar."""
    lines = []
    for line in text.split("\n"):
        line = line.split("\r")[-1]
        while "\b" in line:
            line = re.sub(r"[^\b]\b", "", line, count=1).lstrip("\b")
        lines.append(line)
    return "\n".join(lines)


def merged_streams(outputs):
    """Consecutive outputs of one stream joined (a progress bar may arrive in many kernel messages)."""
    merged = []
    for output in outputs:
        if (output.get("output_type") == "stream" and merged and merged[-1].get("output_type") == "stream"
                and merged[-1]["name"] == output["name"]):
            merged[-1]["text"] += output["text"]
        else:
            merged.append(output)
    return merged


def normalise(nb, work_dir):
    """The executed notebook without this machine in it (see the module docstring); changes `nb` in place."""
    replacements = [(str(Path(work_dir).resolve()), "WORK_DIR"), (str(work_dir), "WORK_DIR"),
                    (str(SHARED_DATA.resolve()), "../shared/data"), (str(REPO), "lstm-apps"),
                    (str(Path.home()), "~")]

    def clean(text):
        for old, new in replacements:
            text = text.replace(old, new)
        return text

    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        outputs = []
        for output in merged_streams(cell.get("outputs", [])):
            if output.get("output_type") == "stream":
                if output["name"] == "stderr" and STDERR_NOISE.search(output["text"]):
                    continue
                text = "\n".join(line for line in final_state(output["text"]).split("\n") if not LOG_LINE.match(line))
                if not text.strip():
                    continue
                output["text"] = clean(text)
            elif "data" in output and "text/plain" in output["data"]:
                output["data"]["text/plain"] = clean(output["data"]["text/plain"])
            outputs.append(output)
        cell["outputs"] = outputs
    nb.metadata.pop("widgets", None)
    return nb


def main(argv=None):
    import nbformat

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"notebooks to render (default: all of {', '.join(PARAMETERS)})")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(PARAMETERS))
    if unknown:
        parser.error(f"unknown notebook {unknown[0]} (known: {', '.join(PARAMETERS)})")
    for name in args.names or PARAMETERS:
        with tempfile.TemporaryDirectory(prefix=f"{name}-") as work_dir:
            print(f"executing {name}.ipynb", flush=True)
            nb = normalise(execute(name, work_dir), work_dir)
        nbformat.write(nb, NOTEBOOKS / f"{name}.ipynb")
        print(f"wrote {name}.ipynb with its outputs", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
