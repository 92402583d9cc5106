"""The breast_cancer pipeline as a plain Python script: the same task functions, no Airflow.

Used by the overhead benchmark as the baseline. Usage: python plain_run.py PROJECT_DIR
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from dag_factory.project import Project
from dag_factory.spec.loader import find_experiment, load_catalog
from dag_factory.workflow import Run, run_steps


def main(root: Path, experiment: str = "breast_cancer") -> float:
    """Run every step in order, as the DAG does; return the seconds spent in the steps."""
    project = Project(root)
    catalog, _ = load_catalog(project.models)
    spec = find_experiment(project.experiments, catalog, experiment)
    run_id = f"plain__{time.time_ns()}"
    start = time.perf_counter()
    run_steps(Run.of(spec, catalog, project.root, project.results, run_id, force=True))
    return time.perf_counter() - start


if __name__ == "__main__":
    print(f"steps took {main(Path(sys.argv[1])):.2f}s")
