"""Render bench/results/*.json as the tables of BENCHMARKS.md."""

from __future__ import annotations

import json

from common import RESULTS, ROOT
from overhead import IMPORT_FLOOR

INTRO = """# Benchmarks

What the factory costs, measured on the project's CI machine with `make bench` (or
`cd bench && ../.venv/bin/python run.py parse parse_compare overhead scheduler data install parallel integrations spark`).
Every figure is the median of repeated runs with min and max beside it, unless a table says otherwise.
Raw numbers: `bench/results/*.json`. Re-running overwrites them and this file.
"""


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def fmt(s: dict, unit: str = "s", scale: float = 1.0) -> str:
    return f"{s['median'] * scale:.2f} {unit} ({s['min'] * scale:.2f}–{s['max'] * scale:.2f})"


def machine_line(result: dict) -> str:
    m = result["machine"]
    pkgs = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
    return f"_Taken {result['taken']} on {m['cpus']} CPUs ({m['cpu']}), {m['memory_gib']} GiB, Python {m['python']}; {pkgs}._"


def parse_section(r: dict) -> list[str]:
    lines = ["## 1. DAG parsing", "",
             "A fresh process with Airflow imported (as in the dag-processor) fills a DagBag from `dags/` "
             f"holding N generated experiments ({r['repeats']} repeats). \"One task\" sets the parsing context of one "
             "task of one DAG, as a worker does before running it.", "",
             "| experiments | full parse | per experiment | one-task parse | DAGs built for one task |",
             "|---:|---:|---:|---:|---:|"]
    for row in r["rows"]:
        lines.append(f"| {row['experiments']} | {fmt(row['full_parse_seconds'])} | {row['per_experiment_ms']:.1f} ms "
                     f"| {fmt(row['one_task_parse_seconds'])} | {row['one_task_dags_built']} |")
    return lines + ["", machine_line(r), ""]


def parse_compare_section(r: dict) -> list[str]:
    lines = ["## 1b. DAG parsing against astronomer's dag-factory", "",
             f"The same probe over N YAML files each: ours (copies of breast_cancer, 7 tasks per DAG) and "
             f"{r['theirs']} (their README's shape, 3 BashOperator tasks per DAG, `load_yaml_dags`), with the same "
             f"Airflow, alternating ({r['repeats']} repeats). CPU time is the fairer clock on a shared machine; "
             "both are given.", "",
             "| experiments | ours, wall | theirs, wall | ours, CPU | theirs, CPU | **ratio, CPU** (wall) |",
             "|---:|---:|---:|---:|---:|---:|"]
    for row in r["rows"]:
        lines.append(f"| {row['experiments']} | {fmt(row['ours_seconds'])} | {fmt(row['theirs_seconds'])} "
                     f"| {fmt(row['ours_cpu_seconds'])} | {fmt(row['theirs_cpu_seconds'])} "
                     f"| **{row['ratio_cpu_seconds']:.2f}x** ({row['ratio_seconds']:.2f}x) |")
    return lines + ["", machine_line(r), ""]


def scheduler_section(r: dict) -> list[str]:
    return ["## 2b. Real scheduler against dag.test()", "",
            "breast_cancer as shipped, `force` so that every run trains. Each repeat runs `dag-factory run --force` "
            "(`dag.test()`), then starts a fresh deployment as `dag-factory ui` configures it (LocalExecutor on SQLite, "
            f"parallelism {r['parallelism']}, task processes forked from a forkserver that imported the ML stack), "
            "triggers one run through the REST API and stops it. Both figures are the DAG run's own duration.", "",
            "| how | DAG run |", "|---|---:|",
            f"| `dag.test()` (`dag-factory run`) | {fmt(r['dag_test_seconds'])} |",
            f"| real scheduler, LocalExecutor | {fmt(r['scheduler_seconds'])} |",
            f"| **ratio (medians)** | **{r['ratio_median']:.2f}x** |", "", machine_line(r), ""]


def overhead_section(r: dict) -> list[str]:
    return ["## 2. Orchestration overhead", "",
            "breast_cancer as shipped (4 models, 5 folds x 10 repeats) in a fresh project copy, so every run trains; "
            "then the same command again on that project, which skips training (unchanged data). "
            "The measurements are interleaved in each repeat.", "",
            "| how | wall time |", "|---|---:|",
            f"| `dag-factory run` (Airflow `dag.test()`, whole command) | {fmt(r['airflow_command_seconds'])} |",
            f"| of which the DAG run itself | {fmt(r['airflow_dag_run_seconds'])} |",
            f"| plain Python script, same task functions (`bench/plain_run.py`) | {fmt(r['plain_script_seconds'])} |",
            f"| **ratio (medians)** | **{r['ratio_median']:.2f}x** |",
            *([f"| `dag-factory run` again, data unchanged (training skipped) | {fmt(r['skip_command_seconds'])} |",
               f"| `python -c \"{IMPORT_FLOOR}\"` (the floor of any run) | {fmt(r['import_floor_seconds'])} |",
               f"| **skip run / import floor (medians)** | **{r['skip_ratio_median']:.2f}x** |"]
              if "skip_command_seconds" in r else []),
            "", machine_line(r), ""]


def data_section(r: dict) -> list[str]:
    lines = ["## 4. Data size", "",
             f"Synthetic binary data (`make_classification`, 50 float32 features) as Parquet; logistic regression and "
             f"XGBoost (hist, 100 trees), {r['cv_folds']}-fold CV. Each step in its own process, as an Airflow task; "
             "one run per size.", "",
             "| rows | step | wall time | peak RSS |", "|---:|---|---:|---:|"]
    return lines + step_rows(r["rows"], "peak_rss_mib", "max_peak_rss_mib") + ["", machine_line(r), ""]


def step_rows(sizes: list[dict], peak: str, max_peak: str) -> list[str]:
    """One table row per step of each size, then the size's total time and largest peak."""
    lines = []
    for size in sizes:
        for s in size["steps"]:
            name = s["step"] + (f" {s['model']}" if s["model"] else "")
            lines.append(f"| {size['rows']:,} | {name} | {s['seconds']:.1f} s | {s[peak]:.0f} MiB |")
        lines.append(f"| {size['rows']:,} | **all steps** | **{size['total_seconds']:.1f} s** | "
                     f"**max {size[max_peak]:.0f} MiB** |")
    return lines


def spark_section(r: dict) -> list[str]:
    s = r["spark"]
    lines = ["## 7. Large data on the Spark engine", "",
             f"The data-size experiment (50 float32 features, logistic regression and XGBoost, {r['cv_folds']}-fold CV) "
             f"with `data.engine: spark`, Spark in local mode (`{s['master']}`, driver memory {s['driver_memory']}) on "
             f"Parquet partitions of 1M rows; the models train on the engine's stratified sample of "
             f"{s['sample_rows']:,} rows. Each step in its own process; peak RSS of its process tree (Python and the "
             "JVM), sampled every 0.2 s. One run per size.", "",
             "| rows | step | wall time | peak RSS (tree) |", "|---:|---|---:|---:|"]
    return lines + step_rows(r["rows"], "tree_peak_rss_mib", "max_tree_peak_rss_mib") + ["", machine_line(r), ""]


def install_section(r: dict) -> list[str]:
    d = r["default_install"]
    lines = ["## 5. Install", "",
             "A new virtual environment and an empty uv cache: every wheel downloaded, as on a new machine (one run).", "",
             "| what | time | disk |", "|---|---:|---:|",
             f"| default dependencies (`uv pip install -c constraints.txt .`) | {d['seconds']:.1f} s | "
             f"{d['venv_mib'] - d['empty_venv_mib']:.0f} MiB |"]
    for extra, e in r.get("extras", {}).items():
        lines.append(f"| with the `{extra}` extra (`.[{extra}]`) | {e['seconds']:.1f} s | "
                     f"{e['venv_mib'] - d['empty_venv_mib']:.0f} MiB (+{e['venv_mib'] - d['venv_mib']:.0f}) |")
    for name, w in r["xgboost_wheels"].items():
        lines.append(f"| `{name}=={r['xgboost_version']}` alone | {w['seconds']:.1f} s | {w['added_mib']:.0f} MiB |")
    return lines + ["", machine_line(r), ""]


def integrations_section(r: dict) -> list[str]:
    lines = ["## 6. Results on object storage, runs tracked in MLflow", "",
             f"breast_cancer (4 models, 5-fold CV), `dag-factory run` in a fresh project copy, {r['repeats']} runs per "
             "setting, interleaved. Both servers on 127.0.0.1, so the S3 figure is the protocol's cost without "
             "network latency.", "",
             "| setting | whole command | DAG run | DAG run vs default |", "|---|---:|---:|---:|"]
    for name, row in r["rows"].items():
        lines.append(f"| {name} | {fmt(row['command_seconds'])} | {fmt(row['dag_run_seconds'])} | "
                     f"{row['dag_run_ratio']:.2f}x |")
    return lines + ["", machine_line(r), ""]


def parallel_section(r: dict) -> list[str]:
    lines = ["## 3. Parallel speed-up", "", r.get("description", ""), "",
             "| setting | DAG run wall time |", "|---|---:|"]
    for name, s in r["runs"].items():
        lines.append(f"| {name} | {fmt(s)} |")
    lines.append(f"| **speed-up of the DAG run (medians)** | **{r['speedup_median']:.2f}x** |")
    lines.append(f"| **speed-up of the training phase (medians)** | **{r['training_speedup_median']:.2f}x** |")
    return lines + ["", machine_line(r), ""]


SECTIONS = (("parse", parse_section), ("parse_compare", parse_compare_section), ("overhead", overhead_section),
            ("scheduler", scheduler_section), ("parallel", parallel_section), ("data_size", data_section),
            ("install", install_section), ("integrations", integrations_section), ("spark", spark_section))


def main() -> None:
    body = [INTRO]
    for name, render in SECTIONS:
        result = load(name)
        body += render(result) if result else [f"## {name}", "", "_Not measured yet._", ""]
    notes = ROOT / "bench" / "NOTES.md"
    if notes.exists():
        body += [notes.read_text()]
    (ROOT / "BENCHMARKS.md").write_text("\n".join(body).rstrip() + "\n")


if __name__ == "__main__":
    main()
