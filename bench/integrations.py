"""What results on object storage and MLflow tracking cost: breast_cancer with each, against the local default.

Every run is `dag-factory run breast_cancer` in a fresh project copy (so it trains), on
- the local results folder (the default),
- an S3 results root served by moto on 127.0.0.1 (every step reads and writes through S3),
- the local folder with a `tracking` section, against an MLflow server on 127.0.0.1
  (SQLite backend, local artifacts; the server of `make test`).
Both servers are the ones the tests start. Loopback has no network latency, so the S3 figure
is the cost of the S3 protocol and the uploads, not of a remote store.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

from common import ROOT, stats, timed_command, timed_output
from overhead import BIN, fresh_project

sys.path.insert(0, str(ROOT / "tests"))
from servers import AWS_ISOLATION, S3_CREDENTIALS, mlflow_server, s3_client, s3_server  # noqa: E402

REPEATS = 3


def run_once(root: Path, env: dict[str, str], section: str) -> tuple[float, float]:
    """Whole-command and DAG-run seconds of one breast_cancer run with ``section`` added to its spec."""
    spec = root / "experiments" / "breast_cancer.yaml"
    spec.write_text(spec.read_text() + section)
    seconds, output = timed_output([str(BIN / "dag-factory"), "--project", str(root), "run", "breast_cancer"], env)
    return seconds, float(re.findall(r"run_duration=([0-9.]+)", output)[-1])


def main() -> dict:
    rows: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)
        env = {**os.environ, "AIRFLOW_HOME": str(base / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
               "MLFLOW_DISABLE_TELEMETRY": "true"}
        env.pop("DAG_FACTORY_RESULTS", None)
        timed_command([str(BIN / "dag-factory"), "--project", str(fresh_project(base)), "run", "breast_cancer"], env)
        with s3_server(base / "moto") as endpoint, mlflow_server(base / "mlflow") as mlflow_uri:
            s3_env = {**env, **S3_CREDENTIALS, **AWS_ISOLATION, "AWS_ENDPOINT_URL": endpoint}
            s3_client(endpoint).create_bucket(Bucket="bench")
            settings = {
                "local results folder (default)": (env, ""),
                "S3 results root (moto on loopback)": (s3_env, "results:\n  root: s3://bench/{n}\n"),
                "local folder + MLflow tracking (server on loopback)": (env, f"tracking:\n  uri: {mlflow_uri}\n"),
            }
            for n in range(REPEATS):
                for name, (run_env, section) in settings.items():
                    command, dag_run = run_once(fresh_project(base), run_env, section.format(n=n))
                    row = rows.setdefault(name, {"command": [], "dag_run": []})
                    row["command"].append(command)
                    row["dag_run"].append(dag_run)
    summary = {name: {"command_seconds": stats(r["command"]), "dag_run_seconds": stats(r["dag_run"])}
               for name, r in rows.items()}
    baseline = summary["local results folder (default)"]["dag_run_seconds"]["median"]
    for row in summary.values():
        row["dag_run_ratio"] = row["dag_run_seconds"]["median"] / baseline
    return {"benchmark": "integrations", "repeats": REPEATS, "rows": summary}


if __name__ == "__main__":
    from common import save

    save("integrations", main())
