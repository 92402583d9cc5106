"""Airflow glue: one DAG per experiment spec, its tasks built from the workflow's step table with one wrapper.

Only the specs are read at parse time. The workflow (pandas, scikit-learn, XGBoost) is
imported inside the tasks, so the dag-processor stays fast however many experiments there are.
Retries, backoff and time limits are Airflow's own (``retries``, ``retry_exponential_backoff``,
``execution_timeout``), and a retry policy fails at once what a retry cannot fix.
"""

from __future__ import annotations

import copy
import logging
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Asset, AssetAlias, Param, TriggerRule, chain, get_current_context, get_parsing_context, task
from airflow.sdk.definitions.retry_policy import RetryDecision, RetryPolicy
from airflow.sdk.exceptions import AirflowSkipException, AirflowTaskTimeout

from dag_factory.airflow.notifier import FactoryNotifier
from dag_factory.airflow.run_note import SKIP_REASON_KEY
from dag_factory.errors import ModelConfigError, ModelTimeout, NothingToDo, RunSkipped, SpecError, is_permanent
from dag_factory.project import Project
from dag_factory.render.dag_doc import experiment_doc, invalid_spec_doc
from dag_factory.spec.loader import load_catalog, load_experiments
from dag_factory.spec.overrides import cv_folds_schema, refuse_unknown_conf
from dag_factory.spec.schema import Catalog, ExperimentSpec, NotifyEvent
from dag_factory.storage.location import LOCAL_SCHEMES, scheme_of

log = logging.getLogger(__name__)

START_DATE = datetime(2024, 1, 1)
TAG = "dag_factory"
INVALID_TAG = "invalid-spec"
#: The tasks of every experiment DAG, in order; each runs the workflow step of the same name.
TASKS = ("load_data", "profile", "preprocess", "train", "select", "promote", "report")
#: Tasks that run whatever happened upstream (so the leaderboard and the report exist even when models failed).
RUN_ALWAYS = ("select", "report")
#: The train instances run also when preprocess skipped the run: each then skips itself with the reason, so
#: that Airflow renders its model name in the grid (it renders ``map_index_template`` only in a running task).
TRAIN_TRIGGER_RULE = TriggerRule.NONE_FAILED
#: promote runs also when select skipped the run, and skips itself: when Airflow skips it instead, report
#: waits for the next scheduling pass (under ``dag.test()`` a 1 s sleep in every skipped run).
PROMOTE_TRIGGER_RULE = TriggerRule.NONE_FAILED


def build_dags(project: Project | None = None) -> dict[str, DAG]:
    """Every experiment of the project as a DAG, keyed by dag id.

    A broken spec becomes a stand-in DAG that shows its error (see ``invalid_spec_dag``), so
    it is visible in the UI and never hides the other experiments. When a worker parses the
    file to run one task, only that task's DAG is built.
    """
    project = project or Project.locate()
    catalog, catalog_errors = load_catalog(project.models)
    wanted = get_parsing_context().dag_id
    loaded = load_experiments(project.experiments, catalog, catalog_errors, only=wanted, project_root=project.root)
    dags: dict[str, DAG] = {}
    errors = dict(loaded.errors)
    for path, spec in loaded.specs.items():
        if wanted is None or wanted == spec.experiment:
            try:
                dags[spec.experiment] = checked_dag(experiment_dag(spec, catalog, project, path))
            except Exception as err:  # noqa: BLE001  one experiment's DAG must not hide the others
                errors[path] = SpecError(str(path), [f"Airflow cannot build the DAG from this spec: "
                                                     f"{type(err).__name__}: {err}; fix the key it names"])
    for path, error in errors.items():
        dag_id = invalid_dag_id(path)
        log.error("Experiment %s is invalid and was not built:\n%s", path, error)
        if wanted is None or wanted == dag_id:
            dags[dag_id] = invalid_spec_dag(dag_id, error)
    return dags


def checked_dag(dag: DAG) -> DAG:
    """Run the checks the dag-processor runs before it keeps a DAG, so a failure stays with one spec.

    Otherwise (say, for a schedule Airflow rejects) the whole dags/ file would show one import error.
    """
    dag.validate()
    dag.check_cycle()
    return dag


def invalid_dag_id(path: Path) -> str:
    """The stand-in DAG id of a broken spec file: ``invalid_spec__<file name>``."""
    return "invalid_spec__" + re.sub(r"[^A-Za-z0-9_]", "_", path.stem)


def invalid_spec_dag(dag_id: str, error: SpecError) -> DAG:
    """A one-task DAG that shows a spec's errors in its docs and fails with them if triggered.

    Its description (one line in the DAG list) gives the count and the first problem; the docs, the
    Import Errors page (dags/spec_errors.py) and the failed task's log list every problem.
    """
    more = f" (+{len(error.problems) - 1} more in the DAG docs)" if len(error.problems) > 1 else ""
    with DAG(dag_id=dag_id, description=f"INVALID SPEC{more}: {error.problems[0]}"[:200],
             doc_md=invalid_spec_doc(error),
             schedule=None, start_date=START_DATE, catchup=False, tags=[TAG, INVALID_TAG]) as dag:

        @task(task_id="spec_error")
        def spec_error() -> None:
            raise SpecError(error.path, error.problems)

        spec_error()
    return dag


class FactoryRetryPolicy(RetryPolicy):
    """Airflow's retry policy for every task of an experiment.

    An error that a retry cannot fix (a bad spec, bad data, a wrong model configuration, a decided
    run) fails at once; a model with its own, lower ``retries`` fails once those are used up. Anything
    else (a download, a crash, a tracking server) is retried as the task's ``retries`` say.
    """

    def __init__(self, spec: ExperimentSpec) -> None:
        self.families = {m.label: m.model for m in spec.models}
        self.model_retries = {m.label: spec.retries if m.retries is None else m.retries for m in spec.models}

    def evaluate(self, exception: BaseException, try_number: int, max_tries: int,
                 context: Any = None) -> RetryDecision:
        model = (context or {}).get("model_name")
        if isinstance(exception, ModelConfigError) and model:
            return RetryDecision.fail(f"not retried: fix the spec or models/{self.families[model]}.yaml")
        if is_permanent(exception):
            return RetryDecision.fail("not retried: the same input fails the same way")
        if model in self.model_retries and try_number > self.model_retries[model]:
            return RetryDecision.fail(f"model {model} used its {self.model_retries[model]} retries")
        return RetryDecision.default()

    def serialize(self) -> dict[str, Any]:
        return {"__type": type(self).__name__, "model_retries": self.model_retries}


def experiment_dag(spec: ExperimentSpec, catalog: Catalog, project: Project, spec_path: Path) -> DAG:
    """The DAG of one experiment: load -> profile -> preprocess -> train[models] -> select -> promote -> report."""
    names = spec.model_names()
    params = {
        "models": SharedParam(names, type="array", items={"type": "string", "enum": names}, minItems=1,
                              description="Models to train in this run (the others show as skipped)."),
        "cv_folds": SharedParam(spec.cv.folds, **cv_folds_schema(),
                                description="Cross-validation folds for every model."),
        "force": SharedParam(False, type="boolean",
                             description="Retrain even when the data has not changed since the champion was trained."),
    }
    # An Asset outlet is announced whenever its task succeeds, also when promote kept the old
    # champion. Through an AssetAlias outlet, the event exists only when promote adds it.
    champion = Champion(spec.experiment)
    with DAG(
        dag_id=spec.experiment,
        description=(spec.description or f"Experiment {spec.experiment}")[:200],
        doc_md=experiment_doc(spec, spec_path),
        schedule=spec.schedule,
        start_date=START_DATE,
        catchup=False,
        tags=sorted({TAG, *spec.tags}),
        params=params,
        max_active_runs=1 if spec.schedule == "@continuous" else 16,
        auto_register=False,  # dags/experiments.py exports what build_dags returns, nothing half-built
        on_failure_callback=notifiers("failed_run", spec, project),
        default_args={
            "owner": spec.owner,
            "retries": spec.retries,
            "retry_delay": timedelta(seconds=spec.retry_delay_seconds),
            "retry_exponential_backoff": 2.0 if spec.retry_exponential_backoff else 0,
            "retry_policy": FactoryRetryPolicy(spec),
        },
    ) as dag:
        context = StepContext(spec, catalog, project)
        tasks = {name: _task(name, context, _options(name, spec, project, champion)) for name in TASKS}
        tasks["train"] = tasks["train"].expand(op_kwargs=[{"model_name": name} for name in names])
        order = [tasks[name] for name in TASKS]
        if spec.promotion.approval == "required":  # a person approves a new champion between select and promote
            from dag_factory.airflow.approval import ApprovalGate

            order.insert(TASKS.index("promote"), ApprovalGate(
                step_context=context, notifiers=notifiers("approval_request", spec, project)))
        chain(*order)
    unshare_params(dag)
    return dag


def notifiers(event: NotifyEvent, spec: ExperimentSpec, project: Project) -> list[FactoryNotifier] | None:
    """The callback that tells the spec's recipients about ``event``, or None when the spec wants no word of it."""
    wanted = spec.notify is not None and event in spec.notify.events
    return [FactoryNotifier(event, spec, project)] if wanted else None


def _options(name: str, spec: ExperimentSpec, project: Project, champion: Champion) -> dict[str, Any]:
    """The Airflow settings of one task, beyond the DAG's default_args."""
    remote = [s for s in spec.data.sources().values() if scheme_of(s) not in (*LOCAL_SCHEMES, "sklearn")]
    if name == "load_data" and remote:
        download = spec.data.download  # a remote source: retried with exponential backoff
        return {"retries": download.retries, "retry_delay": timedelta(seconds=download.backoff_seconds),
                "retry_exponential_backoff": 2.0}
    if name == "train":
        timeout = None if spec.timeout_minutes is None else timedelta(minutes=spec.timeout_minutes)
        return {"map_index_template": "{{ model_name }}", "retries": spec.train_retries(), "execution_timeout": timeout,
                "trigger_rule": TRAIN_TRIGGER_RULE}
    if name == "promote":
        return {"outlets": [champion.alias], "max_active_tis_per_dag": 1,  # one promotion of an experiment at a time
                "on_success_callback": notifiers("new_champion", spec, project), "trigger_rule": PROMOTE_TRIGGER_RULE}
    if name in RUN_ALWAYS:
        return {"trigger_rule": TriggerRule.ALL_DONE}
    return {}


class SharedParam(Param):
    """A DAG param that Airflow copies shallowly while the DAG's tasks are built.

    Airflow deep-copies the DAG's params for each task at each level of its operator class,
    a third of the parse time of an experiment. Nothing changes a param's value or schema in
    place (a run's value replaces ``value``), so the copies can share them.
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> Param:
        twin = Param.__new__(Param)  # a plain Param sharing value and schema, without re-checking them
        twin.__dict__.update(self.__dict__)
        return twin


def unshare_params(dag: DAG) -> None:
    """Make the DAG's params Airflow's own ``Param`` again: its serializer takes no subclass."""
    for name in list(dag.params):
        dag.params[name] = copy.copy(dag.params.get_param(name))


class StepContext:
    """What a task needs to build its run at execution time: the spec, the catalog, the project."""

    def __init__(self, spec: ExperimentSpec, catalog: Catalog, project: Project) -> None:
        self.spec, self.catalog, self.project = spec, catalog, project


class Champion:
    """The Asset a new champion of an experiment is announced on, through its alias."""

    def __init__(self, experiment: str) -> None:
        self.asset = Asset(champion_asset_name(experiment))
        self.alias = AssetAlias(f"new_champion_{experiment}")


def champion_asset_name(experiment: str) -> str:
    """The Asset that gets an event each time ``experiment`` promotes a new champion: ``best_model_<experiment>``."""
    return f"best_model_{experiment}"


def _task(name: str, context: StepContext, options: dict[str, Any]) -> Any:
    """The Airflow task of workflow step ``name``: the one wrapper around every step.

    A PythonOperator, not ``@task``: the decorator inspects every function's signature and adds
    two operator classes, each of which deep-copies the DAG's params again; about half the
    parse time of an experiment, for nothing a step uses.
    """
    if name == "train":

        def train(model_name: str) -> dict[str, Any]:
            """Cross-validate, refit and save one model."""
            return execute_step("train", context, model_name=model_name)

        return PythonOperator.partial(task_id=name, python_callable=train, **options)  # expanded by experiment_dag

    def step() -> Any:
        return execute_step(name, context)

    step.__doc__ = f"The {name} step of the experiment (dag_factory.workflow)."
    return PythonOperator(task_id=name, python_callable=step, **options)


def run_of(context: StepContext, airflow_context: Any) -> Any:
    """The workflow Run of the current DAG run (its params and this task's attempt), built at execution time.

    A trigger conf key that is no param fails every task that builds the run, so the run fails at once.
    """
    from dag_factory import workflow
    from dag_factory.steps.load import Attempt

    params, ti, spec = airflow_context["params"], airflow_context["ti"], context.spec
    refuse_unknown_conf(airflow_context["dag_run"].conf, airflow_context["dag"].params.keys(), spec.experiment)
    return workflow.Run.of(spec, context.catalog, context.project.root, context.project.results_for(spec),
                           airflow_context["run_id"], models=list(params["models"]), force=bool(params["force"]),
                           cv_folds=int(params["cv_folds"]), attempt=Attempt(ti.try_number, ti.max_tries + 1))


def execute_step(name: str, context: StepContext, **kwargs: Any) -> Any:
    """Run workflow step ``name`` for the current DAG run: NothingToDo becomes a skip with its reason."""
    from dag_factory import workflow

    airflow_context = get_current_context()
    if "model_name" in kwargs:
        airflow_context["model_name"] = kwargs["model_name"]  # type: ignore[typeddict-unknown-key]  # the grid name
    spec = context.spec
    run = run_of(context, airflow_context)
    if name == "promote" and spec.promotion.approval == "required":
        from dag_factory.airflow.approval import TASK_ID

        kwargs["approval"] = airflow_context["ti"].xcom_pull(task_ids=TASK_ID)
    try:
        result = workflow.STEPS[name](run, **kwargs)
    except NothingToDo as reason:
        log.warning("Skipped: %s", reason)  # in the task's log itself, not only in its folded Post Execute group
        if isinstance(reason, RunSkipped):  # for the DAG run's note (see run_note)
            airflow_context["ti"].xcom_push(key=SKIP_REASON_KEY, value=str(reason))
        raise AirflowSkipException(str(reason)) from None
    except AirflowTaskTimeout as timeout:
        if name != "train":
            raise
        # Airflow names a mapped instance in the grid only when its task raised an Exception, and its
        # timeout is a BaseException: the model's own error (an Exception) keeps the model's name there.
        error = ModelTimeout(f"model {kwargs['model_name']} exceeded its time limit of "
                             f"{(spec.timeout_minutes or 0) * 60:g}s (timeout_minutes in the spec)")
        workflow.record_model_failure(run, kwargs["model_name"], f"{type(error).__name__}: {error}")
        raise error from timeout
    if name == "promote" and result["promoted"]:
        champion = Champion(spec.experiment)
        airflow_context["outlet_events"][champion.alias].add(champion.asset, extra={
            "experiment": spec.experiment, "winner": result["challenger"], "metric": result["metric"],
            "score": result["challenger_score"], "path": result["path"], "run_id": airflow_context["run_id"]})
    return result
