"""The scikit-learn floor an LSTM keyword model must beat: MFCC statistics + RBF SVM, test accuracy.

What it measures: test-set accuracy of a classic non-neural baseline on the keyword datasets, using the same
split definitions as the LSTM pipeline (`pipelines.keywords.data.load`, which returns files and label ids per
split):

* features: per clip, leading/trailing silence trimmed (librosa.effects.trim, --trim-db 30; Speech Commands clips
  are 1 s with the word somewhere inside, FSDD clips are already trimmed), then librosa MFCCs (--n-mfcc 20,
  --frame-ms 25 windows, --hop-ms 10, --n-mels 40) and, with --deltas 1 or 2 (default 2), their first/second
  time derivatives; each row summarised by its mean and standard deviation over time (default 20 x 3 x 2 = 120
  numbers). No padding (zeros would add silence frames to the statistics). Audio is read with soundfile
  (`lstm_apps.inputs.audio.read_audio_py`).
* classifier: StandardScaler + SVC(kernel="rbf"). C and gamma come from a small fixed grid
  (C in {1, 10, 100} x gamma in {0.25, 0.5, 1} / n_features) chosen by 3-fold cross-validation on the training
  data only (folds grouped by speaker where the task is speaker-independent), or fixed with --fixed C,GAMMA.
* training data: every clip outside the test split (the pipeline's train + validation splits; --fit-on train
  uses train only).

Tasks (--tasks, default all three):
    fsdd-official  FSDD, recordings 0-4 of each speaker = test (300 clips), the rest = train (2700)
    fsdd-speaker   FSDD leave-one-speaker-out: each of the 6 speakers is the test set once; prints each and the mean
    sc-core        Speech Commands core subset (speech_commands_core, FLAC): the 11 non-silence classes (10 words +
                   _unknown_), splits.tsv column `split`; the test split (392 clips)

Run:
    python benchmarks/sklearn_floor.py                                   # all three, ~1-2 min on 2 cores
    python benchmarks/sklearn_floor.py --tasks fsdd-official,sc-core --deltas 0 --n-mfcc 13
    python benchmarks/sklearn_floor.py --tasks fsdd-speaker --fixed 10,scale --jobs 2

Data: --data-root (default $LSTM_APPS_SHARED_DATA, else <repo>/../shared/data) with fsdd/ and
speech_commands_core/ inside, or --fsdd-dir / --speech-commands-dir.
Prints a table of accuracies (with the chosen C/gamma) and a JSON line at the end.
"""
import argparse
import os
import time
from pathlib import Path

import _common

TASKS = ("fsdd-official", "fsdd-speaker", "sc-core")
C_GRID = (1.0, 10.0, 100.0)
GAMMA_FACTORS = (0.25, 0.5, 1.0)  # x 1/n_features (= sklearn's gamma="scale" on standardised features)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated: {', '.join(TASKS)} (default: all)")
    p.add_argument("--data-root", default=str(_common.shared_data_root()),
                   help="folder holding fsdd/ and speech_commands_core/ (default: %(default)s)")
    p.add_argument("--fsdd-dir", help="FSDD folder (default: DATA_ROOT/fsdd)")
    p.add_argument("--speech-commands-dir", help="Speech Commands folder (default: DATA_ROOT/speech_commands_core)")
    p.add_argument("--n-mfcc", type=int, default=20, help="MFCCs per frame (default 20)")
    p.add_argument("--deltas", type=int, choices=(0, 1, 2), default=2,
                   help="add 1st (1) or 1st and 2nd (2) time derivatives (default 2)")
    p.add_argument("--frame-ms", type=float, default=25.0, help="analysis window (default 25 ms)")
    p.add_argument("--hop-ms", type=float, default=10.0, help="frame step (default 10 ms)")
    p.add_argument("--n-mels", type=int, default=40, help="mel bands under the MFCCs (default 40)")
    p.add_argument("--trim-db", type=float, default=30.0,
                   help="trim leading/trailing audio quieter than this many dB below the clip's peak before "
                        "the statistics (librosa.effects.trim; 0 = off; default 30)")
    p.add_argument("--fixed", metavar="C,GAMMA",
                   help="skip the grid: fixed C and gamma (a number, or 'scale')")
    p.add_argument("--fit-on", choices=("train+validation", "train"), default="train+validation",
                   help="which pipeline splits the SVM trains on (default: train+validation = all but test)")
    p.add_argument("--folds", type=int, default=3, help="cross-validation folds of the grid search (default 3)")
    p.add_argument("--jobs", type=int, default=1, help="parallel jobs (features and grid search; default 1)")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------------------------- features
def clip_features(path, args):
    """One clip -> [2 x n_mfcc x (1 + deltas)] float32: mean and std over time of MFCCs (and their deltas)."""
    import librosa
    import numpy as np

    from lstm_apps.inputs.audio import read_audio_py

    samples, rate = read_audio_py(path)
    if args.trim_db:
        trimmed, _ = librosa.effects.trim(samples, top_db=args.trim_db)
        if len(trimmed) >= int(0.1 * rate):  # keep at least 100 ms (else the raw clip)
            samples = trimmed
    win = int(round(args.frame_ms / 1000 * rate))
    n_fft = 1 << (win - 1).bit_length()
    mfcc = librosa.feature.mfcc(y=samples, sr=rate, n_mfcc=args.n_mfcc, n_fft=n_fft, win_length=win,
                                hop_length=int(round(args.hop_ms / 1000 * rate)), n_mels=args.n_mels)
    rows = [mfcc]
    width = min(9, mfcc.shape[1] - (1 - mfcc.shape[1] % 2))  # odd and <= frames
    for order in range(1, args.deltas + 1):
        rows.append(librosa.feature.delta(mfcc, width=width, order=order) if width >= 3 else np.zeros_like(mfcc))
    stacked = np.concatenate(rows)
    return np.concatenate([stacked.mean(axis=1), stacked.std(axis=1)]).astype(np.float32)


class FeatureCache:
    """path -> feature vector, computed once per run (the speaker folds reuse the FSDD features)."""

    def __init__(self, args):
        self.args, self.cache, self.seconds = args, {}, 0.0

    def __call__(self, paths):
        import numpy as np
        missing = [p for p in paths if p not in self.cache]
        if missing:
            start = time.perf_counter()
            if self.args.jobs > 1:
                from joblib import Parallel, delayed
                vectors = Parallel(n_jobs=self.args.jobs)(
                    delayed(clip_features)(p, self.args) for p in missing)
            else:
                vectors = [clip_features(p, self.args) for p in missing]
            self.cache.update(zip(missing, vectors))
            self.seconds += time.perf_counter() - start
        return np.stack([self.cache[p] for p in paths])


# ----------------------------------------------------------------------------------------------- data
def load_splits(data_dir, **data_overrides):
    """`pipelines.keywords.data.load` with the quick preset's data keys (+ overrides)."""
    from lstm_apps.config import build_config
    from pipelines.keywords import data as data_lib
    from pipelines.keywords.task import TASK

    cfg = build_config(TASK.presets_dir, "quick")
    cfg["data"].update(data_overrides)
    return data_lib.load(cfg, Path(data_dir).resolve())


def fit_split(data, fit_on):
    splits = ("train", "valid") if fit_on == "train+validation" else ("train",)
    files = [f for s in splits for f in data.files[s]]
    targets = [t for s in splits for t in data.targets[s]]
    return files, targets


def fsdd_speaker(path):
    from pipelines.keywords.data import FSDD_NAME
    return FSDD_NAME.match(Path(path).stem)["speaker"]


def speech_commands_speaker(path):
    """`word_<speaker>_nohash_<n>` (the _unknown_ folder) or `<speaker>_nohash_<n>` (word folders)."""
    return Path(path).stem.split("_nohash_")[0].rsplit("_", 1)[-1]


# ----------------------------------------------------------------------------------------------- model
def fit_and_score(args, x_train, y_train, x_test, y_test, groups=None):
    import numpy as np
    from sklearn.model_selection import GridSearchCV, GroupKFold, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    start = time.perf_counter()
    n_features = x_train.shape[1]
    pipeline = make_pipeline(StandardScaler(), SVC(kernel="rbf"))
    if args.fixed:
        c, gamma = args.fixed.split(",")
        gamma = gamma if gamma == "scale" else float(gamma)
        model = pipeline.set_params(svc__C=float(c), svc__gamma=gamma).fit(x_train, y_train)
        chosen, cv_score = {"C": float(c), "gamma": gamma}, None
    else:
        grid = {"svc__C": list(C_GRID), "svc__gamma": [f / n_features for f in GAMMA_FACTORS]}
        if groups is not None:
            cv = GroupKFold(n_splits=args.folds)
        else:
            cv = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=0)
        search = GridSearchCV(pipeline, grid, cv=cv, n_jobs=args.jobs)
        search.fit(x_train, y_train, groups=groups)
        model, cv_score = search.best_estimator_, float(search.best_score_)
        chosen = {"C": search.best_params_["svc__C"],
                  "gamma": f"{search.best_params_['svc__gamma'] * n_features:g}/d"}
    accuracy = float(np.mean(model.predict(x_test) == np.asarray(y_test)))
    return accuracy, chosen, cv_score, time.perf_counter() - start


def row_for(task, test_set, accuracy, chosen, cv_score, seconds, n_train, n_test, classes):
    return {"task": task, "test_set": test_set, "accuracy": accuracy, "C": chosen["C"], "gamma": chosen["gamma"],
            "cv_accuracy": cv_score, "train_clips": n_train, "test_clips": n_test, "classes": classes,
            "seconds": seconds}


# ----------------------------------------------------------------------------------------------- tasks
def run_fsdd_official(args, features, fsdd_dir):
    data = load_splits(fsdd_dir, split="official")
    files, targets = fit_split(data, args.fit_on)
    accuracy, chosen, cv, seconds = fit_and_score(args, features(files), targets, features(data.files["test"]),
                                                  data.targets["test"])
    return [row_for("fsdd-official", "recordings 0-4", accuracy, chosen, cv, seconds, len(files),
                    len(data.files["test"]), len(data.labels))]


def run_fsdd_speaker(args, features, fsdd_dir):
    import numpy as np
    from pipelines.keywords.data import FSDD_NAME, audio_files

    folder = Path(fsdd_dir) / "recordings" if (Path(fsdd_dir) / "recordings").is_dir() else Path(fsdd_dir)
    speakers = sorted({m["speaker"] for m in (FSDD_NAME.match(p.stem) for p in audio_files(folder)) if m})
    rows = []
    for speaker in speakers:
        data = load_splits(fsdd_dir, split="speaker", test_speaker=speaker)
        files, targets = fit_split(data, args.fit_on)
        groups = [fsdd_speaker(f) for f in files]
        accuracy, chosen, cv, seconds = fit_and_score(args, features(files), targets,
                                                      features(data.files["test"]), data.targets["test"], groups)
        rows.append(row_for("fsdd-speaker", speaker, accuracy, chosen, cv, seconds, len(files),
                            len(data.files["test"]), len(data.labels)))
        print(f"  fsdd-speaker {speaker:<9} accuracy {accuracy:.4f} (C={chosen['C']}, gamma={chosen['gamma']})",
              flush=True)
    rows.append({"task": "fsdd-speaker", "test_set": f"mean of {len(rows)} speakers",
                 "accuracy": float(np.mean([r["accuracy"] for r in rows])),
                 "train_clips": rows[0]["train_clips"], "test_clips": rows[0]["test_clips"],
                 "classes": rows[0]["classes"], "seconds": float(sum(r["seconds"] for r in rows))})
    return rows


def run_sc_core(args, features, sc_dir):
    from pipelines.keywords.data import SILENCE

    data = load_splits(sc_dir, words="core")
    files, targets = fit_split(data, args.fit_on)  # files only: the pipeline's _silence_ clips are left out
    classes = [label for label in data.labels if label != SILENCE]
    groups = [speech_commands_speaker(f) for f in files]
    accuracy, chosen, cv, seconds = fit_and_score(args, features(files), targets, features(data.files["test"]),
                                                  data.targets["test"], groups)
    return [row_for("sc-core", "splits.tsv test", accuracy, chosen, cv, seconds, len(files),
                    len(data.files["test"]), len(classes))]


def main(argv=None):
    args = parse_args(argv)
    tasks = [t for t in args.tasks.split(",") if t]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise SystemExit(f"error: --tasks {args.tasks}: expected some of {', '.join(TASKS)}")
    if args.n_mfcc < 1 or args.folds < 2 or args.jobs < 1:
        raise SystemExit("error: --n-mfcc and --jobs must be >= 1, --folds >= 2")
    if args.fixed:
        try:
            c, gamma = args.fixed.split(",")
            float(c), gamma == "scale" or float(gamma)
        except ValueError:
            raise SystemExit(f"error: --fixed {args.fixed}: expected C,GAMMA, e.g. 10,scale or 10,0.01")
    root = Path(args.data_root)
    fsdd_dir = Path(args.fsdd_dir) if args.fsdd_dir else root / "fsdd"
    sc_dir = Path(args.speech_commands_dir) if args.speech_commands_dir else root / "speech_commands_core"
    if any(t.startswith("fsdd") for t in tasks):
        _common.require_dir(fsdd_dir, "FSDD folder")
    if "sc-core" in tasks:
        _common.require_dir(sc_dir, "Speech Commands folder")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # data.load checks WAV files with tf.audio

    import librosa
    import sklearn
    machine = _common.machine_info(versions=f"scikit-learn {sklearn.__version__} / librosa {librosa.__version__}",
                                   jobs=args.jobs)
    _common.print_machine(machine)
    features = FeatureCache(args)
    runners = {"fsdd-official": lambda: run_fsdd_official(args, features, fsdd_dir),
               "fsdd-speaker": lambda: run_fsdd_speaker(args, features, fsdd_dir),
               "sc-core": lambda: run_sc_core(args, features, sc_dir)}
    rows = []
    for task in tasks:
        start = time.perf_counter()
        task_rows = runners[task]()
        rows += task_rows
        print(f"{task}: accuracy {task_rows[-1]['accuracy']:.4f} ({time.perf_counter() - start:.1f} s)", flush=True)

    d = 2 * args.n_mfcc * (1 + args.deltas)
    notes = [f"features: {args.n_mfcc} MFCCs{' + ' + ('delta' if args.deltas == 1 else 'delta + delta-delta') if args.deltas else ''}"
             f" ({args.frame_ms:g} ms windows, {args.hop_ms:g} ms hop, {args.n_mels} mels, "
             f"{'trimmed at ' + format(args.trim_db, 'g') + ' dB' if args.trim_db else 'untrimmed'}), mean and std "
             f"over time = {d} numbers per clip; extracted in {features.seconds:.1f} s ({len(features.cache)} clips)",
             ("C, gamma fixed at " + args.fixed) if args.fixed else
             f"StandardScaler + RBF SVC; C in {list(C_GRID)} x gamma in {list(GAMMA_FACTORS)}/d by {args.folds}-fold CV "
             f"on the training data (folds grouped by speaker for fsdd-speaker and sc-core); cv = its CV accuracy",
             f"trained on the pipeline's {args.fit_on} split(s); splits from pipelines.keywords.data.load",
             "accuracy is the only figure here that is not a timing: it does not depend on machine load"]
    _common.report("sklearn_floor", "scikit-learn floor: MFCC statistics + RBF SVM (test accuracy)", rows,
                   [("task", "task", None), ("test_set", "test set", None), ("accuracy", "accuracy", ".4f"),
                    ("C", "C", "g"), ("gamma", "gamma", None), ("cv_accuracy", "cv", ".4f"),
                    ("train_clips", "train", "d"), ("test_clips", "test", "d"), ("classes", "classes", "d"),
                    ("seconds", "fit s", ".1f")],
                   machine, vars(args), notes)


if __name__ == "__main__":
    main()
