"""Start the run's child process from a warm forkserver: ``dag-factory run`` as it is, minus the imports.

Every ``dag-factory run`` starts a Python that imports skops, scikit-learn and Airflow and builds the
in-process Execution API before its DAG run starts, and imports more as its tasks run: a small spec's
run took 11.7 s that way on the CI machine, and 4.5 s forked warm. Tests whose subject is not that start
(``run_dag`` in conftest) get their child from a forkserver that paid it once per test worker. The child
runs the runner's own ``child_main`` with the run's environment, and the parent is ``run_experiment``
itself, reading the same output;
the CLI's own start is tested where it is the subject (``main([... "run" ...])`` and
``python -m dag_factory ... run``).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from multiprocessing.connection import Connection
from typing import IO

#: What the forkserver imports once (from the checkout's root, pytest's working directory; a forkserver
#: that cannot import it stays cold, and its children import what they need, slower).
PRELOAD = ["tests.warm_preload"]
_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(PRELOAD)


class WarmChild:
    """The part of ``subprocess.Popen`` that ``run_experiment`` uses, for a child forked by the forkserver."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        reader, writer = _context.Pipe(duplex=False)
        self.process = _context.Process(target=_child, args=(args, env, writer), daemon=False)
        self.process.start()
        writer.close()
        self.stdout: IO[str] = os.fdopen(os.dup(reader.fileno()), "r", encoding="utf-8")
        reader.close()

    @property
    def returncode(self) -> int | None:
        return self.process.exitcode

    def terminate(self) -> None:
        self.process.terminate()

    def wait(self) -> int | None:
        self.process.join()
        return self.returncode

    def __enter__(self) -> WarmChild:
        return self

    def __exit__(self, error_type: type[BaseException] | None, *exc: object) -> None:
        self.stdout.close()
        if error_type is not None:  # the parent gave up on the run: a child without its reader must not go on
            self.process.kill()
        self.wait()


def _child(args: list[str], env: dict[str, str], out: Connection) -> None:
    """The forked child: the run's environment and output pipe, then the runner's own child side."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.dup2(out.fileno(), 1)
    os.dup2(out.fileno(), 2)
    out.close()
    os.environ.clear()
    os.environ.update(env)
    # What the interpreter and Airflow read from the environment at start-up, and a test may set per run.
    sys.path[:0] = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]
    from airflow import settings

    settings.DAGS_FOLDER = env["AIRFLOW__CORE__DAGS_FOLDER"]
    from dag_factory.airflow.runner import child_main

    child_main(args)
