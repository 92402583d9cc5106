"""The in-process Execution API of a `dag-factory run` serves the SDK's API version with every route Airflow's
full app serves for it, and no other version (see dag_factory.airflow.in_process_api)."""

from __future__ import annotations

import json
import subprocess
import sys

COMPARE = """
import json
from airflow.api_fastapi.execution_api.app import create_task_execution_api_app
from airflow.sdk.api.datamodels._generated import API_VERSION
from airflow.sdk.execution_time.supervisor import in_process_api_server
from fastapi.routing import APIRoute

from dag_factory.airflow.in_process_api import serve_sdk_version_only

def routes(app):
    app._cadwyn_initialize()  # what the first request does
    return {version: sorted([route.path, sorted(route.methods), getattr(route.response_model, "__name__", None)]
                            for route in router.routes if isinstance(route, APIRoute))
            for version, router in app.router.versioned_routers.items()}

full = routes(create_task_execution_api_app())
narrowed = serve_sdk_version_only()
print(json.dumps({"sdk": API_VERSION, "narrowed": narrowed, "full": full, "served": routes(in_process_api_server().app)}))
"""


def test_the_run_serves_the_sdks_api_version_alone_with_the_same_routes_as_airflows_full_app():
    out = subprocess.run([sys.executable, "-c", COMPARE], capture_output=True, text=True, check=True)
    found = json.loads(out.stdout.strip().splitlines()[-1])
    sdk, full, served = found["sdk"], found["full"], found["served"]
    assert found["narrowed"] is True
    assert len(full) > 1 and sdk in full  # Airflow's own app serves older versions too
    assert list(served) == [sdk]
    assert served[sdk] == full[sdk] and len(served[sdk]) > 20
