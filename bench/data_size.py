"""Cost as the data grows: synthetic binary data at 10k, 100k and 1M rows x 50 features.

Logistic regression and XGBoost (hist), 3-fold CV. Each step runs in its own process, as an
Airflow task does, so its wall time and peak RSS are its own. Preprocessing runs once and the
two models read its split.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, save

SIZES = (10_000, 100_000, 1_000_000)
FEATURES = 50
STEPS = ("load_data", "profile", "preprocess", ("train", "logistic_regression"), ("train", "xgboost"), "select")

SPEC = """\
experiment: synthetic_{rows}
data:
  source: {source}
  target: y
  positive_class: 1
  min_rows: 20
cv: {{folds: 3, repeats: 1, seed: 0}}
models:
  - model: logistic_regression
  - model: xgboost
    params: {{n_estimators: 100, tree_method: hist}}
"""


def make_data(rows: int, where: Path) -> Path:
    import pandas as pd
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=rows, n_features=FEATURES, n_informative=20, random_state=0)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(FEATURES)]).astype("float32")
    frame["y"] = y
    path = where / f"synthetic_{rows}.parquet"
    frame.to_parquet(path)
    return path


def run_size(rows: int, scratch: Path) -> dict:
    data = make_data(rows, scratch)
    spec = scratch / f"synthetic_{rows}.yaml"
    spec.write_text(SPEC.format(rows=rows, source=data))
    run_id, results = f"run_{rows}", scratch / "results"
    steps = []
    for step in STEPS:
        name, model = (step, None) if isinstance(step, str) else step
        command = [sys.executable, str(ROOT / "bench" / "step.py"), str(spec), run_id, str(results), name]
        out = subprocess.run(command + ([model] if model else []), capture_output=True, text=True, cwd=ROOT)
        if out.returncode != 0:
            raise RuntimeError(f"{name} {model or ''} failed at {rows} rows:\n{out.stderr[-3000:]}")
        steps.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps({"rows": rows, **steps[-1]}), file=sys.stderr)
    return {"rows": rows, "features": FEATURES, "steps": steps,
            "max_peak_rss_mib": max(s["peak_rss_mib"] for s in steps),
            "total_seconds": sum(s["seconds"] for s in steps)}


def main() -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        return {"benchmark": "data_size", "cv_folds": 3, "rows": [run_size(n, Path(scratch)) for n in SIZES]}


if __name__ == "__main__":
    save("data_size", main())
