"""Answering an approval request from a terminal, for `dag-factory run`, `approve` and `reject`.

The answer is recorded by ``airflow.approval.answer`` in a child process that has the project's
Airflow settings (this process may have none, and must not pick up another Airflow home).
Under `dag-factory run` nobody else can answer (``dag.test()`` waits for a response and no scheduler
applies the timeout), so the run asks: ``--approve``/``--reject``, else a y/N prompt on a terminal,
else Reject, the same safe default a timeout applies.
"""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
from typing import Literal

from dag_factory.project import Project

#: What `dag-factory run` does when a request waits: the flag's answer, or ask (a prompt on a terminal, else Reject).
Policy = Literal["approve", "reject", "ask"]


def record_answer(project: Project, dag_id: str, run_id: str | None, approve: bool, by: str) -> tuple[int, str]:
    """Record Approve/Reject for ``run_id`` (None: the newest waiting run); the exit code and the line it printed."""
    from dag_factory.airflow.runner import airflow_environment

    command = [sys.executable, "-m", "dag_factory.airflow.approval", "approve" if approve else "reject", dag_id,
               run_id or "-", by]
    done = subprocess.run(command, env={**os.environ, **airflow_environment(project)}, capture_output=True, text=True,
                          check=False)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith(("Approve", "Reject",
                                                                                            "error:"))]
    return done.returncode, lines[-1] if lines else (done.stderr.strip().splitlines() or ["no answer recorded"])[-1]


def answer_waiting_run(project: Project, dag_id: str, run_id: str, policy: Policy) -> tuple[bool, str]:
    """Answer the request a `dag-factory run` waits on, by ``policy``; whether it was recorded, and what to print."""
    user = getpass.getuser()
    if policy == "ask" and sys.stdin.isatty():
        reply = input(f"\nApprove the new champion of {dag_id} (the request is printed above)? [y/N] ")
        approve, why = reply.strip().lower() in ("y", "yes"), "answered at the prompt"
    elif policy == "ask":
        approve, why = False, "no terminal to ask and no --approve: Reject, as a timeout would"
    else:
        approve, why = policy == "approve", f"--{policy}"
    code, line = record_answer(project, dag_id, run_id, approve, f"{user} (dag-factory run)")
    return (True, f"APPROVAL: {line} ({why})\n") if code == 0 else (False, f"APPROVAL NOT RECORDED: {line}\n")
