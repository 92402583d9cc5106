"""The DAG file as Airflow's dag-processor sees it: one DAG per experiment, cheap to parse."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, fast_spec, write_experiment


def dagbag(project):
    """Parse the project's dags/ folder with Airflow's DagBag, under the project's settings."""
    from airflow.dag_processing.dagbag import DagBag

    os.environ["DAG_FACTORY_EXPERIMENTS"] = str(project.experiments)
    os.environ["DAG_FACTORY_MODELS"] = str(project.models)
    try:
        return DagBag(str(project.dags))
    finally:
        del os.environ["DAG_FACTORY_EXPERIMENTS"], os.environ["DAG_FACTORY_MODELS"]


def test_dagbag_has_one_dag_per_experiment_and_a_mapped_train_task(project):
    bag = dagbag(project)
    assert bag.import_errors == {}
    specs = sorted(p.stem for p in project.experiments.glob("*.yaml"))
    assert sorted(d for d in bag.dag_ids if "dag_factory" in bag.dags[d].tags) == specs  # not the example consumer
    dag = bag.dags["breast_cancer"]
    train = dag.get_task("train")
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    assert isinstance(train, MappedOperator)
    assert train.map_index_template == "{{ model_name }}"
    assert [t.task_id for t in dag.topological_sort()] == [
        "load_data", "profile", "preprocess", "train", "select", "promote", "report"]
    assert "Benign vs malignant" in dag.doc_md and "sklearn:breast_cancer" in dag.doc_md
    assert {"dag_factory", "medical"} <= set(dag.tags)
    assert dag.params["models"] == ["logistic_regression", "xgboost", "random_forest", "svm"]
    assert dag.params["cv_folds"] == 5 and dag.params["force"] is False


def test_a_copied_spec_with_other_models_is_a_second_dag(project):
    text = (project.experiments / "breast_cancer.yaml").read_text()
    text = text.replace("experiment: breast_cancer", "experiment: breast_cancer_trees")
    text = text.replace("  - model: logistic_regression\n    params: {C: 1.0}\n", "")
    (project.experiments / "breast_cancer_trees.yaml").write_text(text)
    bag = dagbag(project)
    assert {"breast_cancer", "breast_cancer_trees"} <= set(bag.dag_ids)
    assert bag.dags["breast_cancer_trees"].params["models"] == ["xgboost", "random_forest", "svm"]


def test_a_broken_spec_shows_as_a_stand_in_dag_and_as_an_import_error_and_hides_nothing(project):
    broken = write_experiment(project, "broken", "experiment: broken\ndata: {source: sklearn:iris, target: y, bogus: 1}\n"
                                                 "cv: {folds: many}\nmodels:\n  - model: logistic_regression\n")
    write_experiment(project, "quick", fast_spec("quick"))
    bag = dagbag(project)
    assert {"breast_cancer", "quick", "invalid_spec__broken"} <= set(bag.dag_ids)
    assert list(bag.import_errors) == [str(project.dags / "spec_errors.py")]
    lines = bag.import_errors[str(project.dags / "spec_errors.py")].splitlines()
    assert [line for line in lines if line.startswith(str(broken))] == [
        f'{broken}: data.bogus (line 2): unknown key "bogus"; allowed keys here: source, test_source, format, header, '
        "columns, target, positive_class, drop, categorical, min_rows, max_missing_share, drop_duplicates, "
        "missing_values, download, engine, incremental, spark",
        f"{broken}: cv.folds (line 3): Input should be a valid integer, unable to parse string as an integer "
        "(got 'many')"]
    assert any(line.startswith("dag_factory.airflow.spec_errors.BrokenSpecs: 1 experiment spec(s) are invalid, "
                               "with 2 problem(s)") for line in lines)
    stand_in = bag.dags["invalid_spec__broken"]
    assert stand_in.description.startswith("INVALID SPEC (+1 more in the DAG docs): data.bogus (line 2)")
    assert "  - cv.folds (line 3): Input should be a valid integer" in stand_in.doc_md
    assert "invalid-spec" in stand_in.tags
    (project.experiments / "broken.yaml").unlink()  # a deleted spec leaves nothing behind
    assert dagbag(project).import_errors == {}


GATED = "promotion: {approval: required}\nnotify: {webhooks: [alerts], events: [failed_run, approval_request]}\n"


def test_an_approval_gate_sits_between_select_and_promote_and_notifiers_are_the_callbacks(project):
    write_experiment(project, "gated", fast_spec("gated") + GATED)
    bag = dagbag(project)
    assert bag.import_errors == {}
    dag = bag.dags["gated"]
    assert [t.task_id for t in dag.topological_sort()] == [
        "load_data", "profile", "preprocess", "train", "select", "approve", "promote", "report"]
    gate = dag.get_task("approve")
    assert gate.options == ["Approve", "Reject"] and gate.defaults == ["Reject"]
    assert gate.response_timeout.total_seconds() == 24 * 3600
    assert [n.event for n in gate.notifiers] == ["approval_request"]
    assert [n.event for n in dag.on_failure_callback] == ["failed_run"]
    assert not dag.get_task("promote").on_success_callback  # new_champion is not among the events
    plain = bag.dags["breast_cancer"]
    assert "approve" not in plain.task_ids and plain.on_failure_callback is None


def test_importing_the_dag_files_imports_no_heavy_library(project):
    write_experiment(project, "gated", fast_spec("gated") + GATED)  # the approval operator and notifiers too
    code = (
        "import json, runpy, sys\n"
        f"runpy.run_path({str(project.dags / 'experiments.py')!r})\n"
        f"runpy.run_path({str(project.dags / 'spec_errors.py')!r})\n"
        "print(json.dumps([m for m in ('pandas', 'sklearn', 'xgboost', 'numpy.linalg') if m in sys.modules]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, "DAG_FACTORY_EXPERIMENTS": str(project.experiments)})
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("wanted", ["breast_cancer", "quick"])
def test_a_worker_parsing_for_one_task_builds_only_that_dag(project, wanted):
    write_experiment(project, "quick", fast_spec("quick"))
    code = (
        "import runpy\n"
        f"ns = runpy.run_path({str(project.dags / 'experiments.py')!r})\n"
        "from airflow.sdk import DAG\n"
        "print(sorted(k for k, v in ns.items() if isinstance(v, DAG)))\n"
    )
    env = {**os.environ, "DAG_FACTORY_EXPERIMENTS": str(project.experiments),
           "_AIRFLOW_PARSING_CONTEXT_DAG_ID": wanted}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert result.stdout.strip().splitlines()[-1] == str([wanted])


def test_params_are_airflows_own_and_no_task_shares_a_param_object_with_another(project):
    from airflow.sdk import Param
    from airflow.serialization.serialized_objects import DagSerialization

    dag = dagbag(project).dags["breast_cancer"]
    for name in ("models", "cv_folds", "force"):  # Airflow's serializer takes no Param subclass
        assert type(dag.params.get_param(name)) is Param
    owners = [dag.params, *(task.params for task in dag.tasks)]
    assert len({id(params.get_param("models")) for params in owners}) == len(owners)
    restored = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    assert restored.params.get_param("models").value == dag.params["models"]
    assert restored.params.get_param("cv_folds").schema["minimum"] == 2


def test_the_scheduler_preloads_the_task_modules_and_each_of_them_imports():
    """The forkserver skips a preload module it cannot import, silently: a renamed one would cost every task."""
    import importlib

    from dag_factory.airflow.standalone import server_environment
    from dag_factory.project import Project

    env = server_environment(Project(REPO), 8080, home="/tmp/airflow-home")
    assert env["AIRFLOW__SCHEDULER__MP_START_METHOD"] == "forkserver"
    modules = env["AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD"].split(",")
    assert "dag_factory.workflow" in modules
    for name in modules:
        importlib.import_module(name)
