"""A cheaper in-process Execution API for ``dag.test()``: only the API version its client speaks.

``dag.test()`` serves Airflow's Task Execution API inside the process, and its only client is the
task SDK of the same install. Airflow builds that app with every API version it can serve (ten in
Airflow 3.3): Cadwyn generates and validates all routes once per version on the first request,
about 3 s of every run on this machine, for nine versions no client asks for. The fix belongs in
Airflow (``InProcessExecutionAPI`` could serve the SDK's version alone); until then the run's own
process builds that app, once, with the newest version only. A server and its workers are not touched.
"""

from __future__ import annotations

from functools import cache


@cache  # the app is built once per process (Airflow caches it too)
def serve_sdk_version_only() -> bool:
    """Build this process's in-process Execution API for the newest API version only; whether it was done.

    The newest version's shapes are the head's, so its routes are the ones Airflow would build for it;
    routes that exist only in older versions (Cadwyn's ``only_exists_in_older_versions``) are left out,
    as the newest version leaves them out. An SDK that speaks an older version (a mismatched install),
    or a Cadwyn without the hooks used here, keeps Airflow's full app.
    """
    from airflow.api_fastapi.execution_api import versions
    from airflow.sdk.api.datamodels._generated import API_VERSION
    from airflow.sdk.execution_time.supervisor import in_process_api_server
    from cadwyn import HeadVersion, Version, VersionBundle

    try:
        from cadwyn.route_generation import _DELETED_ROUTE_TAG
    except ImportError:
        return False
    every_version = versions.bundle
    newest = every_version.versions[0].value
    if newest != API_VERSION:
        return False
    versions.bundle = VersionBundle(HeadVersion(), Version(newest))
    try:
        app = in_process_api_server().app
    finally:
        versions.bundle = every_version
    head = getattr(app, "_latest_version_router", None)
    if head is None:  # a Cadwyn that keeps its routes elsewhere: let Airflow build its full app after all
        in_process_api_server.cache_clear()
        return False
    head.routes = [route for route in head.routes if _DELETED_ROUTE_TAG not in getattr(route, "tags", ())]
    return True
