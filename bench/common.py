"""Shared helpers of the benchmarks: repeated timing, peak memory, machine facts, result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def stats(samples: list[float]) -> dict[str, float]:
    """Median, min and max of repeated measurements (seconds or bytes)."""
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "n": len(samples)}


def repeat(fn: Callable[[], float], times: int) -> dict[str, float]:
    """Run ``fn`` (which returns one measurement) ``times`` times and summarise."""
    return stats([fn() for _ in range(times)])


def timed_command(command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> float:
    """Wall time of one command; raises if it fails."""
    return timed_output(command, env, cwd)[0]


def timed_output(command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[float, str]:
    """Wall time and standard output of one command; raises if it fails."""
    start = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return elapsed, result.stdout


def machine() -> dict[str, Any]:
    """Facts that make a figure comparable: CPU count, memory, Python and key package versions."""
    memory_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                     if line.startswith("MemTotal"))
    versions = {}
    for name in ("apache-airflow", "scikit-learn", "xgboost-cpu", "pandas", "numpy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory_gib": round(memory_kb / 2**20, 1),
            "python": platform.python_version(), "packages": versions}


def save(name: str, payload: dict[str, Any]) -> Path:
    """Write one benchmark's results as bench/results/<name>.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), "taken": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                **payload}, indent=2) + "\n")
    print(f"wrote {path}", file=sys.stderr)
    return path
