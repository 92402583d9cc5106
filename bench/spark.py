"""The Spark engine on data that outgrows one pandas worker: 1M and 10M rows x 50 features.

The data is generated once as Parquet partitions of 1M rows (kept in bench/.cache/), then each
step runs in its own process, as an Airflow task does. Spark runs in local mode on this
machine's cores; its JVM is a child of the step's process, so peak memory is sampled over the
whole process tree (Python and JVM), every 0.2 s. The models train on the engine's stratified
sample (data.spark.sample_rows, 100,000 rows by default).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import ROOT, save
from data_size import SPEC as PANDAS_SPEC

FEATURES = 50
PARTITION_ROWS = 1_000_000
SIZES = tuple(int(n) for n in os.environ.get("BENCH_SPARK_ROWS", "1000000,10000000").split(","))
CACHE = ROOT / "bench" / ".cache"
STEPS = ("load_data", "profile", "preprocess", ("train", "logistic_regression"), ("train", "xgboost"), "select")

#: data_size's experiment (the same models and CV), on the Spark engine.
SPEC = PANDAS_SPEC.replace("experiment: synthetic_", "experiment: spark_").replace("  min_rows: 20\n", """\
  min_rows: 20
  engine: spark
  spark:
    master: "local[*]"
    config: {{spark.driver.memory: 6g}}
""")


def make_partitions(rows: int) -> Path:
    """``rows`` rows of a noisy linear rule as Parquet partitions of 1M rows (made once, then reused)."""
    import numpy as np
    import pandas as pd

    folder = CACHE / f"spark_{rows}"
    weights = np.random.default_rng(0).normal(size=FEATURES)
    for i in range(rows // PARTITION_ROWS):
        path = folder / f"2026-01-{i + 1:02d}.parquet"
        if path.exists():
            continue
        rng = np.random.default_rng(i + 1)
        x = rng.normal(size=(PARTITION_ROWS, FEATURES)).astype("float32")
        frame = pd.DataFrame(x, columns=[f"f{j}" for j in range(FEATURES)])
        frame["y"] = (x @ weights + rng.normal(scale=3.0, size=PARTITION_ROWS) > 0).astype("int8")
        folder.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(path.with_suffix(".tmp"), index=False)
        path.with_suffix(".tmp").rename(path)
    return folder


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants (the step's Python and its JVM)."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


def run_step(command: list[str]) -> dict:
    """Run one step process; its result line plus the process tree's peak RSS."""
    env = {**os.environ, "DAG_FACTORY_DATA_ROOTS": str(CACHE)}  # the generated partitions are a data root
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    peak = [0.0]

    def sample() -> None:
        while child.poll() is None:
            peak[0] = max(peak[0], tree_rss_mib(child.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = child.communicate()
    sampler.join()
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(command[-2:])} failed:\n{err[-3000:]}")
    return {**json.loads(out.strip().splitlines()[-1]), "tree_peak_rss_mib": peak[0]}


def run_size(rows: int, scratch: Path) -> dict:
    start = time.perf_counter()
    source = make_partitions(rows)
    made = time.perf_counter() - start
    spec = scratch / f"spark_{rows}.yaml"
    spec.write_text(SPEC.format(rows=rows, source=source))
    steps = []
    for step in STEPS:
        name, model = (step, None) if isinstance(step, str) else step
        command = [sys.executable, str(ROOT / "bench" / "step.py"), str(spec), f"run_{rows}", str(scratch / "results"),
                   name, *([model] if model else [])]
        steps.append(run_step(command))
        print(json.dumps({"rows": rows, **steps[-1]}), file=sys.stderr)
    return {"rows": rows, "features": FEATURES, "partitions": rows // PARTITION_ROWS, "generate_seconds": made,
            "steps": steps, "total_seconds": sum(s["seconds"] for s in steps),
            "max_tree_peak_rss_mib": max(s["tree_peak_rss_mib"] for s in steps)}


def main() -> dict:
    env_note = {"master": "local[*]", "driver_memory": "6g", "sample_rows": 100_000}
    with tempfile.TemporaryDirectory() as scratch:
        return {"benchmark": "spark", "cv_folds": 3, "spark": env_note,
                "rows": [run_size(n, Path(scratch)) for n in SIZES]}


if __name__ == "__main__":
    save("spark", main())
