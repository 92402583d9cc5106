"""Run one pipeline step in its own process, as an Airflow task does, and report its peak memory.

Usage: python step.py SPEC.yaml RUN_ID RESULTS STEP [MODEL]
Prints one JSON line: the step's seconds and peak RSS in MiB. STEP is a task of the DAG
(load_data, profile, preprocess, train, select); each works in RESULTS/runs/<experiment>/RUN_ID/.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from dag_factory.project import Project
from dag_factory.spec.loader import load_catalog, load_experiment
from dag_factory.workflow import STEPS, Run


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM).

    Not getrusage's ru_maxrss: Linux carries that across fork and exec, so a step would inherit
    the peak of the benchmark process that started it.
    """
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def main(spec_path: Path, run_id: str, results: Path, step: str, model: str | None) -> None:
    project = Project.locate()
    catalog, _ = load_catalog(project.models)
    run = Run.of(load_experiment(spec_path, catalog), catalog, project.root, results, run_id, force=True)
    start = time.perf_counter()
    STEPS[step](run, *([model] if model else []))
    seconds = time.perf_counter() - start
    print(json.dumps({"step": step, "model": model, "seconds": seconds, "peak_rss_mib": peak_rss_mib()}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4], sys.argv[5] if len(sys.argv) > 5 else None)
