"""Fits scikit-learn's RandomForestClassifier for bench/forest.ts.

usage: forest_sklearn.py TRAIN_CSV TEST_CSV TREES SEED PROBA_OUT [auto|impute] [MIN_SAMPLES_LEAF]

CSVs have a header, feature columns then an integer label column; "nan" marks
a missing value. scikit-learn >= 1.4 takes NaN natively (missing values go
left or right, whichever is better, at each split: the same rule as our
forest); older versions (Debian 12 ships 1.2) cannot, so missing values are
replaced by -1 (below every real value, so a split can still isolate them),
as the service does for ml-random-forest. "impute" forces the latter. Writes the
test-set class probabilities as float64 little-endian to PROBA_OUT and prints
one JSON line with timings, pickle size and the peak RSS up to the end of the
fit (data loading included, pickling not).
"""
import json
import pickle
import resource
import sys
import time

import numpy as np
import sklearn
from sklearn.ensemble import RandomForestClassifier


def peak_rss_mb():
    """VmHWM (reset by exec); ru_maxrss would include the spawning parent's RSS."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load(path):
    data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64)
    if data.ndim == 1:
        data = data.reshape(1, -1)
    return data[:, :-1], data[:, -1].astype(np.int64)


def main():
    train_csv, test_csv, trees, seed, proba_out = sys.argv[1:6]
    missing = sys.argv[6] if len(sys.argv) > 6 else "auto"
    min_samples_leaf = int(sys.argv[7]) if len(sys.argv) > 7 else 1
    X, y = load(train_csv)
    Xt, yt = load(test_csv)
    major, minor = (int(p) for p in sklearn.__version__.split(".")[:2])
    native_nan = (major, minor) >= (1, 4) and missing != "impute"
    if not native_nan:
        X = np.where(np.isnan(X), -1.0, X)
        Xt = np.where(np.isnan(Xt), -1.0, Xt)
    model = RandomForestClassifier(
        n_estimators=int(trees),
        max_features="sqrt",
        min_samples_leaf=min_samples_leaf,
        bootstrap=True,
        n_jobs=1,
        random_state=int(seed) % (2**32),
    )
    t0 = time.perf_counter()
    model.fit(X, y)
    fit_s = time.perf_counter() - t0
    peak_after_fit = peak_rss_mb()
    t0 = time.perf_counter()
    proba = model.predict_proba(Xt)
    predict_s = time.perf_counter() - t0
    # classes_ are the sorted labels seen in training; widen to every label
    n_classes = int(max(y.max(), yt.max())) + 1
    full = np.zeros((len(Xt), n_classes), dtype=np.float64)
    full[:, model.classes_.astype(np.int64)] = proba
    full.astype("<f8").tofile(proba_out)
    print(json.dumps({
        "version": sklearn.__version__,
        "native_nan": native_nan,
        "fit_s": fit_s,
        "predict_rows_per_s": len(Xt) / predict_s if predict_s > 0 else None,
        "pickle_bytes": len(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)),
        "max_rss_mb": peak_after_fit,
        "n_classes": n_classes,
    }))


if __name__ == "__main__":
    main()
