"""The breast_cancer pipeline as a plain Python script: the same task functions, no Airflow.

Used by the overhead benchmark as the baseline. Usage: python plain_run.py PROJECT_DIR
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from dag_factory.layout import Project, run_dir
from dag_factory.loader import find_experiment, load_catalog
from dag_factory.spec import config_fingerprint
from dag_factory.tasks import load_task, preprocess_task, profile_task, promote_task, report_task, select_task, train_task


def main(root: Path, experiment: str = "breast_cancer") -> float:
    """Run every step in order, as the DAG does; return the seconds spent in the steps."""
    project = Project(root)
    catalog, _ = load_catalog(project.models)
    spec = find_experiment(project.experiments, catalog, experiment)
    run_id = f"plain__{time.time_ns()}"
    folder = run_dir(project.results, experiment, run_id)
    start = time.perf_counter()
    loaded = load_task(spec, folder)
    profile_task(spec, folder, loaded)
    meta = preprocess_task(spec, folder, project.results, loaded,
                           config_fingerprint(spec, catalog, spec.model_names()), force=True)
    for entry in spec.models:
        train_task(spec, folder, entry, catalog[entry.model], meta)
    select_task(spec, folder, run_id)
    promote_task(spec, folder, project.results)
    report_task(spec, folder)
    return time.perf_counter() - start


if __name__ == "__main__":
    print(f"steps took {main(Path(sys.argv[1])):.2f}s")
