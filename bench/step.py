"""Run one pipeline step in its own process, as an Airflow task does, and report its peak memory.

Usage: python step.py SPEC.yaml RUN_FOLDER RESULTS STEP [MODEL]
Prints one JSON line: the step's seconds and peak RSS in MiB. Step outputs (the small dicts
that would travel through XCom) are kept as JSON files in RUN_FOLDER/xcom/.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from dag_factory.layout import Project
from dag_factory.loader import load_catalog, load_experiment
from dag_factory.spec import config_fingerprint
from dag_factory import tasks


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM).

    Not getrusage's ru_maxrss: Linux carries that across fork and exec, so a step would inherit
    the peak of the benchmark process that started it.
    """
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def main(spec_path: Path, folder: Path, results: Path, step: str, model: str | None) -> None:
    catalog, _ = load_catalog(Project.locate().models)
    spec = load_experiment(spec_path, catalog)
    xcom = folder / "xcom"
    xcom.mkdir(parents=True, exist_ok=True)
    read = lambda name: json.loads((xcom / f"{name}.json").read_text())  # noqa: E731
    start = time.perf_counter()
    if step == "load":
        out = tasks.load_task(spec, folder)
    elif step == "profile":
        out = tasks.profile_task(spec, folder)
    elif step == "preprocess":
        out = tasks.preprocess_task(spec, folder, results, config_fingerprint(spec, catalog, spec.model_names()),
                                    force=True)
    elif step == "train":
        entry = next(m for m in spec.models if m.label == model)
        out = tasks.train_task(spec, folder, entry, catalog[entry.model], read("preprocess"))
    elif step == "select":
        out = tasks.select_task(spec, folder, "bench")
    else:
        raise SystemExit(f"unknown step {step}")
    seconds = time.perf_counter() - start
    (xcom / f"{step}.json").write_text(json.dumps(out, default=str))
    peak_mib = peak_rss_mib()
    print(json.dumps({"step": step, "model": model, "seconds": seconds, "peak_rss_mib": peak_mib}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4], sys.argv[5] if len(sys.argv) > 5 else None)
