"""Airflow glue: one DAG per experiment spec, wiring the steps with the TaskFlow API.

Only the specs are read at parse time. pandas, scikit-learn and XGBoost are imported inside
the tasks, so the dag-processor stays fast however many experiments there are.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow.sdk import DAG, Asset, AssetAlias, Param, TriggerRule, get_current_context, get_parsing_context, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from dag_factory.errors import DagFactoryError, ModelConfigError, NothingToDo, SpecError, is_permanent
from dag_factory.layout import Project, run_dir
from dag_factory.loader import Catalog, load_catalog, load_experiments
from dag_factory.spec import ExperimentSpec, config_fingerprint
from dag_factory.storage import StoragePath

if TYPE_CHECKING:
    from dag_factory.tracking import NoTracking, Tracker

log = logging.getLogger(__name__)

START_DATE = datetime(2024, 1, 1)
TAG = "dag_factory"
INVALID_TAG = "invalid-spec"


def build_dags(project: Project | None = None) -> dict[str, DAG]:
    """Every experiment of the project as a DAG, keyed by dag id.

    A broken spec becomes a stand-in DAG that shows its error (see ``invalid_spec_dag``), so
    it is visible in the UI and never hides the other experiments. When a worker parses the
    file to run one task, only that task's DAG is built.
    """
    project = project or Project.locate()
    catalog, catalog_errors = load_catalog(project.models)
    wanted = get_parsing_context().dag_id
    loaded = load_experiments(project.experiments, catalog, catalog_errors, only=wanted)
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
    """A one-task DAG that shows a spec's errors in its docs and fails with them if triggered."""
    message = str(error)
    with DAG(
        dag_id=dag_id,
        description=f"INVALID SPEC: {error.problems[0]}"[:200],
        doc_md=f"## This experiment spec is invalid\n\nFix the file and the real DAG appears.\n\n```\n{message}\n```",
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        tags=[TAG, INVALID_TAG],
    ) as dag:

        @task(task_id="spec_error")
        def spec_error() -> None:
            raise SpecError(error.path, error.problems)

        spec_error()
    return dag


def airflow_outcome(body: Callable[..., Any]) -> Callable[..., Any]:
    """Map a step's outcome onto Airflow's task states.

    NothingToDo becomes a skipped task with its reason in the log; an error that a retry
    cannot fix (bad spec, bad data, wrong model config) fails at once instead of waiting
    through the retries; anything else (a download, a crash) is retried as the spec says.
    """

    @functools.wraps(body)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return body(*args, **kwargs)
        except NothingToDo as reason:
            raise AirflowSkipException(str(reason)) from None
        except DagFactoryError as err:
            if is_permanent(err):
                raise AirflowFailException(f"{err} (not retried: the same input fails the same way)") from err
            raise

    return wrapper


def experiment_dag(spec: ExperimentSpec, catalog: Catalog, project: Project, spec_path: Path) -> DAG:
    """The DAG of one experiment: load -> profile -> preprocess -> train[models] -> select -> promote -> report."""
    names = spec.model_names()
    entries = {m.label: m for m in spec.models}
    params = {
        "models": Param(names, type="array", items={"type": "string", "enum": names}, minItems=1,
                        description="Models to train in this run (the others show as skipped)."),
        "cv_folds": Param(spec.cv.folds, type="integer", minimum=2, maximum=20,
                          description="Cross-validation folds for every model."),
        "force": Param(False, type="boolean",
                       description="Retrain even when the data has not changed since the champion was trained."),
    }

    def context_run(context: dict[str, Any]) -> RunContext:
        """This run's spec (with its params applied), results root, run folder and tracker.

        Built when a task runs, never at parse time: opening an object store or MLflow is not cheap.
        """
        from dag_factory.tracking import tracker_for

        p = context["params"]
        run_spec = spec.model_copy(update={"cv": spec.cv.model_copy(update={"folds": int(p["cv_folds"])})})
        results = project.results_for(spec)
        return RunContext(run_spec, results, run_dir(results, spec.experiment, context["run_id"]),
                          tracker_for(run_spec, context["run_id"]))

    # An Asset outlet is announced whenever its task succeeds, also when promote kept the old
    # champion. Through an AssetAlias outlet, the event exists only when promote adds it.
    champion_asset = Asset(champion_asset_name(spec.experiment))
    champion_alias = AssetAlias(f"new_champion_{spec.experiment}")
    with DAG(
        dag_id=spec.experiment,
        description=(spec.description or f"Experiment {spec.experiment}")[:200],
        doc_md=_doc_md(spec, spec_path),
        schedule=spec.schedule,
        start_date=START_DATE,
        catchup=False,
        tags=sorted({TAG, *spec.tags}),
        params=params,
        max_active_runs=1 if spec.schedule == "@continuous" else 16,
        auto_register=False,  # dags/experiments.py exports what build_dags returns, nothing half-built
        default_args={
            "owner": spec.owner,
            "retries": spec.retries,
            "retry_delay": timedelta(seconds=spec.retry_delay_seconds),
        },
    ) as dag:

        @task
        @airflow_outcome
        def load_data() -> dict[str, Any]:
            """Load the source, keep a raw copy in the run folder."""
            from dag_factory.tasks import load_task

            run = context_run(get_current_context())
            return load_task(run.spec, run.folder, project.root, run.tracker)

        @task
        @airflow_outcome
        def profile() -> dict[str, Any]:
            """Statistics of the raw data: profile.json and profile.md."""
            from dag_factory.tasks import profile_task

            run = context_run(get_current_context())
            return profile_task(run.spec, run.folder)

        @task
        @airflow_outcome
        def preprocess() -> dict[str, Any]:
            """Validate, clean and split once; skip the rest when the data is unchanged."""
            from dag_factory.tasks import preprocess_task

            context = get_current_context()
            run = context_run(context)
            config = config_fingerprint(run.spec, catalog, list(context["params"]["models"]))
            return preprocess_task(run.spec, run.folder, run.results, config, force=bool(context["params"]["force"]),
                                   tracker=run.tracker)

        @task(map_index_template="{{ model_name }}")
        @airflow_outcome
        def train(meta: dict[str, Any], model_name: str) -> dict[str, Any]:
            """Cross-validate, refit and save one model."""
            from dag_factory.tasks import train_task

            context = get_current_context()
            context["model_name"] = model_name  # type: ignore[typeddict-unknown-key]  # names the grid cell
            run = context_run(context)
            entry = entries[model_name]
            selected = model_name in context["params"]["models"]
            try:
                return train_task(run.spec, run.folder, entry, catalog[entry.model], meta, selected=selected,
                                  tracker=run.tracker)
            except ModelConfigError as err:
                raise AirflowFailException(f"{err} (not retried: fix the spec or models/{entry.model}.yaml)") from err
            except Exception as err:
                if isinstance(err, NothingToDo) or is_permanent(err):
                    raise  # airflow_outcome skips it, or fails it at once
                allowed = spec.model_retries(entry)
                if context["ti"].try_number > allowed:  # this model's own retries are used up
                    raise AirflowFailException(f"{type(err).__name__}: {err} (after {allowed} retries)") from err
                raise

        @task(trigger_rule=TriggerRule.ALL_DONE)
        @airflow_outcome
        def select() -> dict[str, Any]:
            """Rank the models that finished; runs even when some failed."""
            from dag_factory.tasks import select_task

            context = get_current_context()
            run = context_run(context)
            return select_task(run.spec, run.folder, context["run_id"], run.tracker)

        @task(outlets=[champion_alias], max_active_tis_per_dag=1)  # one promotion of this experiment at a time
        @airflow_outcome
        def promote(board: dict[str, Any]) -> dict[str, Any]:
            """Replace the champion only with a better model; announce a new one as an Asset event."""
            from dag_factory.tasks import promote_task

            context = get_current_context()
            run = context_run(context)
            decision = promote_task(run.spec, run.folder, run.results, run.tracker)
            if decision["promoted"]:
                context["outlet_events"][champion_alias].add(champion_asset, extra={
                    "experiment": spec.experiment, "winner": decision["challenger"], "metric": decision["metric"],
                    "score": decision["challenger_score"], "path": decision["path"], "run_id": context["run_id"]})
            return decision

        @task(trigger_rule=TriggerRule.ALL_DONE)
        @airflow_outcome
        def report() -> None:
            """Log the run's outcome; fail the run when any model failed so it is never a silent green."""
            from dag_factory.tasks import report_task

            run = context_run(get_current_context())
            report_task(run.spec, run.folder, run.tracker)

        meta = preprocess()
        load_data() >> profile() >> meta
        most_retries = max(spec.model_retries(m) for m in spec.models)
        trained = train.override(retries=most_retries).partial(meta=meta).expand(model_name=names)
        board = select()
        trained >> board
        promote(board) >> report()
    return dag


class RunContext(NamedTuple):
    """What every task of one DAG run works with."""

    spec: ExperimentSpec
    results: StoragePath
    folder: StoragePath
    tracker: Tracker | NoTracking


def champion_asset_name(experiment: str) -> str:
    """The Asset that gets an event each time ``experiment`` promotes a new champion: ``best_model_<experiment>``."""
    return f"best_model_{experiment}"


def _doc_md(spec: ExperimentSpec, spec_path: Path) -> str:
    """The DAG's documentation: the description, the models, and the spec as YAML."""
    rows = "\n".join(f"| {m.label} | {m.model} | `{m.params or {}}` |" for m in spec.models)
    return (
        f"# {spec.experiment}\n\n{spec.description}\n\n"
        f"**Data:** `{spec.data.source}`, target `{spec.data.target}`, positive class `{spec.data.positive_class}`  \n"
        f"**Selection:** CV {spec.selection.metric} ({spec.cv.folds} folds x {spec.cv.repeats}), "
        f"gates `{spec.selection.require}`, min improvement {spec.selection.min_improvement}\n\n"
        f"| model | family | params |\n|---|---|---|\n{rows}\n\n"
        f"Spec file: `{spec_path.name}`\n\n```yaml\n{_read(spec_path)}\n```\n"
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return "(spec file not readable)"
