"""Helpers for the data tests: a wdbc.data copy, a loopback HTTP server, the champion's identity.

Not a test module: the data test files import it, as they import conftest.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from conftest import REPO
from dag_factory.storage.files import read_json, sha256_file
from dag_factory.artifacts.layout import best_dir

#: UCI's names for the 30 features of wdbc.data, in file order (the order of scikit-learn's copy).
WDBC_FEATURES = [
    f"{measure}_{stat}"
    for stat in ("mean", "se", "worst")
    for measure in ("radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity",
                    "concave_points", "symmetry", "fractal_dimension")
]
WDBC_COLUMNS = ["id", "diagnosis", *WDBC_FEATURES]


def wdbc_frame() -> pd.DataFrame:
    """scikit-learn's bundled breast cancer data as UCI's wdbc.data table: id, diagnosis M/B, 30 features."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.data.copy()
    frame.columns = WDBC_FEATURES
    frame.insert(0, "diagnosis", ["M" if code == 0 else "B" for code in bunch.target])  # 0 is malignant
    frame.insert(0, "id", range(842_000, 842_000 + len(frame)))
    return frame


def write_wdbc(path: Path, frame: pd.DataFrame | None = None) -> Path:
    """Write a wdbc.data-style file, as UCI ships it: no header row, no index."""
    path.parent.mkdir(parents=True, exist_ok=True)
    (wdbc_frame() if frame is None else frame).to_csv(path, header=False, index=False)
    return path


def wdbc_spec(name: str, source: str, extra: str = "") -> str:
    """A spec for a wdbc.data file, with the same split, folds and models as conftest's fast_spec."""
    return f"""\
experiment: {name}
description: Wisconsin breast cancer from a headerless wdbc.data file.
retries: 0
data:
  source: "{source}"
  header: false
  columns: [{", ".join(WDBC_COLUMNS)}]
  target: diagnosis
  positive_class: M
  drop: [id]
{extra}cv: {{folds: 3, repeats: 1, seed: 1}}
models:
  - model: logistic_regression
  - model: random_forest
    params: {{n_estimators: 20}}
"""


@dataclass
class Server:
    """A file server on 127.0.0.1 whose first ``failures`` requests answer ``status``, after ``stall`` seconds."""

    root: Path
    failures: int = 0
    status: int = 503
    stall: float = 0.0
    port: int = 0
    log: list[tuple[str, int]] = field(default_factory=list)  # (path, status) of every request

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"


@contextmanager
def serve(root: Path, failures: int = 0, status: int = 503, stall: float = 0.0) -> Iterator[Server]:
    """Serve ``root`` over HTTP on a free loopback port for the duration of the block."""
    server = Server(root, failures, status, stall)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self) -> None:
            if len(server.log) < server.failures:
                server.log.append((self.path, server.status))
                time.sleep(server.stall)
                self.send_error(server.status)
                return
            server.log.append((self.path, 200 if (root / self.path.lstrip("/")).is_file() else 404))
            super().do_GET()

        def log_message(self, *args: object) -> None:  # keep the test output clean
            pass

    class Quiet(http.server.ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            pass  # a client that timed out and hung up is part of the test, not a failure

    with serving_in_thread(Quiet(("127.0.0.1", 0), Handler)) as port:
        server.port = port
        yield server


@contextmanager
def serving_in_thread(httpd: http.server.HTTPServer) -> Iterator[int]:
    """Serve ``httpd`` from a thread for the duration of the block; yields its port, closes it afterwards."""
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def champion_identity(results: Path, experiment: str) -> tuple[str, str]:
    """The champion's run id (from its model card) and the SHA-256 of its model.skops."""
    best = best_dir(results, experiment)
    return read_json(best / "model_card.json")["run_id"], sha256_file(best / "model.skops")


def write_features(folder: Path, x, target: str, y) -> Path:
    """``folder``/data.csv: the columns of ``x`` as features f0..fn, then the column ``target`` holding ``y``."""
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
    frame[target] = y
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "data.csv", index=False)
    return folder / "data.csv"


def load_spec(tmp: Path, text: str):
    """An ExperimentSpec from YAML text, read the way Airflow's parse reads it (file, loader, catalog)."""
    from dag_factory.spec.loader import load_catalog, load_experiment

    path = tmp / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    return load_experiment(path, load_catalog(REPO / "models")[0])


def prepare(spec, results: Path, run_id: str, force: bool = True) -> tuple[Path, dict]:
    """Run the DAG's load, profile and preprocess steps without Airflow: the run folder and its meta.json."""
    from dag_factory.workflow import Run, run_steps as run_workflow

    files = run_workflow(Run.of(spec, shipped_catalog(), REPO, results, run_id, force=force), until="preprocess")
    return files.folder, read_json(files.meta)


def run_steps(spec, results: Path, run_id: str, force: bool = True) -> Path:
    """Run every step of the DAG up to promote, in the DAG's order, without Airflow; return the run folder.

    A DataError stops it where it stops the DAG: before any model trains or is promoted.
    """
    from dag_factory.workflow import Run, run_steps as run_workflow

    return run_workflow(Run.of(spec, shipped_catalog(), REPO, results, run_id, force=force), until="promote").folder


def shipped_catalog() -> dict:
    """The model catalog in the checkout's models/."""
    from dag_factory.spec.loader import load_catalog

    return load_catalog(REPO / "models")[0]


#: The data keys that put an experiment on the Spark engine.
SPARK = "  engine: spark\n"
SMALL_SPEC = """\
experiment: {name}
retries: 0
data:
  source: "{source}"
  target: diagnosis
  positive_class: M
  drop: [id]
{extra}
cv: {{folds: 3, repeats: 2, seed: 1}}
models:
  - model: logistic_regression
  - model: random_forest
    params: {{n_estimators: 20}}
"""


def partitioned(folder: Path, frame: pd.DataFrame, days: list[str]) -> Path:
    """Write ``frame`` as one Parquet partition per day (consecutive row ranges) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-len(frame) // len(days))
    for i, day in enumerate(days):
        frame.iloc[i * size:(i + 1) * size].to_parquet(folder / f"{day}.parquet", index=False)
    return folder


def small_frame() -> pd.DataFrame:
    """The breast cancer data as wdbc.data has it, with its first 8 features only: every Spark pass stays short."""
    return wdbc_frame()[["id", "diagnosis", *WDBC_FEATURES[:8]]]


def small_spec(name: str, source: Path, extra: str = SPARK) -> str:
    """A two-model spec of ``small_frame`` data at ``source``; ``extra``: more data keys (default: engine spark)."""
    return SMALL_SPEC.format(name=name, source=source, extra=extra)
