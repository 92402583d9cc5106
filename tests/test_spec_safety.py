"""Hostile specs: a spec reads only data inside the data roots, builds only estimators, and fails before training.

Each test is what someone who can add a YAML file to experiments/ or models/ might try; each
is refused by `dag-factory validate` (and where it matters, again by the step itself) with one
sentence naming the file, the key, the line and the fix. No Airflow run is needed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from conftest import REPO, fast_spec
from dag_factory.cli import main
from dag_factory.errors import DataError, ModelConfigError, SpecError
from dag_factory.project import Project
from dag_factory.spec.loader import load_catalog, load_experiment
from dag_factory.spec.schema import CatalogEntry, DataSpec, ModelEntry
from dag_factory.steps.load import load_data


@pytest.fixture
def project(tmp_path, monkeypatch) -> Project:
    """A project with the shipped catalog; only the project folder is a data root."""
    monkeypatch.delenv("DAG_FACTORY_DATA_ROOTS", raising=False)
    root = tmp_path / "project"
    shutil.copytree(REPO / "models", root / "models")
    (root / "experiments").mkdir()
    (root / "data").mkdir()
    return Project(root)


def spec_with_source(project: Project, source: str) -> Path:
    path = project.experiments / "hostile.yaml"
    path.write_text(fast_spec("hostile").replace("sklearn:breast_cancer", source), encoding="utf-8")
    return path


def refusal(project: Project, path: Path) -> str:
    """The one problem load_experiment reports for ``path`` (as `validate` and Airflow's parse see it)."""
    with pytest.raises(SpecError) as refused:
        load_experiment(path, load_catalog(project.models)[0], project_root=project.root)
    assert len(refused.value.problems) == 1, refused.value.problems
    return refused.value.problems[0]


def secret_file(tmp_path: Path) -> Path:
    """A file outside the project that a spec must not read (a stand-in for /etc/shadow)."""
    secret = tmp_path / "outside" / "shadow"
    secret.parent.mkdir()
    secret.write_text("root:$6$saltsalt$hashhashhashhash:19000:0:99999:7:::\n")
    return secret


def test_a_relative_path_out_of_the_project_is_refused(project):
    problem = refusal(project, spec_with_source(project, "../../../../../../../etc/shadow"))
    assert problem == ('data.source (line 4): "../../../../../../../etc/shadow" resolves to /etc/shadow, outside the '
                       f'data roots ({project.root}); move the file into the project folder, or add its folder to '
                       'DAG_FACTORY_DATA_ROOTS (folders separated by ":")')


@pytest.mark.parametrize(("source", "message"), [
    ("file:///etc/passwd", '"file:///etc/passwd" resolves to /etc/passwd, outside the data roots'),
    ("file://db.internal/etc/passwd", '"file://db.internal/etc/passwd" names a file on host "db.internal"'),
    ("simplecache::file:///etc/passwd", "reads local files through an fsspec wrapper"),
    ("zip://inner.csv", "reads local files through an fsspec wrapper"),
])
def test_a_url_that_reaches_local_files_outside_the_roots_is_refused(project, source, message):
    assert message in refusal(project, spec_with_source(project, source))


def test_a_symbolic_link_out_of_the_project_is_refused_at_validate_and_at_load(project, tmp_path):
    secret = secret_file(tmp_path)
    (project.root / "data" / "cases.csv").symlink_to(secret)
    problem = refusal(project, spec_with_source(project, "data/cases.csv"))
    assert f'"data/cases.csv" resolves to {secret}, outside the data roots' in problem

    # A link swapped in after validation is caught where the file is opened, before a byte is read.
    (project.root / "data" / "later.csv").write_text("x,target\n1,a\n")
    spec = load_experiment(spec_with_source(project, "data/later.csv"), load_catalog(project.models)[0],
                           project_root=project.root)
    (project.root / "data" / "later.csv").unlink()
    (project.root / "data" / "later.csv").symlink_to(secret)
    with pytest.raises(DataError, match=f"resolves to {secret}, outside the data roots") as refused:
        load_data(spec.data, tmp_path / "cache", base=project.root)
    assert "hash" not in str(refused.value)


def test_a_data_root_setting_lets_a_folder_in(project, tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "cases.csv").write_text("x,target\n" + "".join(f"{i},{'ab'[i % 2]}\n" for i in range(30)))
    path = spec_with_source(project, str(shared / "cases.csv"))
    assert "outside the data roots" in refusal(project, path)
    monkeypatch.setenv("DAG_FACTORY_DATA_ROOTS", f"/nonexistent{os.pathsep}{shared}")
    spec = load_experiment(path, load_catalog(project.models)[0], project_root=project.root)
    frame, _ = load_data(spec.data, tmp_path / "cache", base=project.root)
    assert len(frame) == 30


def test_errors_quote_only_a_short_sanitised_excerpt_of_the_data(project, tmp_path):
    """A file whose first line is a secret is not echoed whole as a 'column name'."""
    (project.root / "data" / "notes.csv").write_text("root:$6$saltsalt$hashhashhashhash:19000:0:99999:7:::\n1\n2\n")
    spec = DataSpec(source="data/notes.csv", target="target", positive_class="a")
    from dag_factory.steps.validate import check_columns

    frame, _ = load_data(spec, tmp_path / "cache", base=project.root)
    with pytest.raises(DataError) as refused:
        check_columns(frame, spec)
    assert "hashhashhashhash" not in str(refused.value)
    assert 'column "target" not found; the data has columns: root:$6$saltsalt$hash...' in str(refused.value)

    (project.root / "data" / "headless.csv").write_text("1.5,2.5,a\n3.5,4.5,b\n")
    frame, _ = load_data(DataSpec(source="data/headless.csv"), tmp_path / "cache", base=project.root)
    with pytest.raises(DataError, match="the first row looks like data, not column names .* set data.header: false"):
        check_columns(frame, DataSpec(source="data/headless.csv"))


# --- estimators -------------------------------------------------------------------------------------------


def validate_with(project: Project, capsys, catalog: dict[str, str], models: str) -> tuple[int, str]:
    """`dag-factory validate` of one spec using extra catalog entries: exit code and stderr."""
    for name, text in catalog.items():
        (project.models / f"{name}.yaml").write_text(text, encoding="utf-8")
    path = project.experiments / "hostile.yaml"
    path.write_text(fast_spec("hostile", models), encoding="utf-8")
    code = main(["--project", str(project.root), "validate", str(path)])
    return code, capsys.readouterr().err


def test_a_stdlib_class_reached_through_an_allowed_module_is_refused_and_never_built(project, capsys, tmp_path):
    target = tmp_path / "made_by_the_spec"
    code, err = validate_with(project, capsys, {
        "tmpdir": f"estimator: sklearn.datasets._openml.TemporaryDirectory\nparams: {{dir: {target}}}\n"},
        "  - model: tmpdir\n")
    assert code == 1
    assert ('models[0] (line 8): model "tmpdir": estimator "sklearn.datasets._openml.TemporaryDirectory" is '
            "tempfile.TemporaryDirectory, defined outside the allowed modules (sklearn., xgboost.); name a class "
            f"where it is defined, or add tempfile to DAG_FACTORY_ALLOWED_MODULES if you trust it; set in "
            f"{project.models / 'tmpdir.yaml'} (line 1)") in err
    assert not target.exists()


@pytest.mark.parametrize(("estimator", "message"), [
    ("sklearn.pipeline.Pipeline", "sklearn.pipeline.Pipeline cannot be built from params alone (Pipeline.__init__() "
                                  "missing 1 required positional argument: 'steps'); name a single classifier"),
    ("sklearn.pipeline.Pipeline\nparams: {steps: [[model, sklearn.svm.SVC]]}",
     "sklearn.pipeline.Pipeline is built from other estimators (its `steps`), which a spec cannot write"),
    ("sklearn.ensemble.VotingClassifier\nparams: {estimators: [[a, sklearn.svm.SVC]]}",
     "sklearn.ensemble.VotingClassifier is built from other estimators (its `estimators`)"),
    ("sklearn.ensemble.BaggingClassifier\nparams: {estimator: sklearn.svm.SVC}",
     "params.estimator: The 'estimator' parameter of BaggingClassifier must be an object implementing 'fit' and "
     "'predict' or None. Got 'sklearn.svm.SVC' instead."),
    ("sklearn.linear_model.Ridge", "sklearn.linear_model.Ridge is not a classifier (sklearn.base.is_classifier is "
                                   "false), and this experiment's task is classification; name a classifier"),
    ("sklearn.utils.check_array", 'estimator "sklearn.utils.check_array" is not a class'),
    ("sklearn.utils.Bunch", 'estimator "sklearn.utils.Bunch" is not a scikit-learn estimator'),
])
def test_only_classifiers_are_built_and_composites_only_from_estimators(project, capsys, estimator, message):
    code, err = validate_with(project, capsys, {"odd": f"estimator: {estimator}\n"}, "  - model: odd\n")
    assert code == 1 and message in err


def test_a_meta_estimator_whose_parts_pass_is_accepted(project, capsys):
    code, err = validate_with(project, capsys, {"bagged": "estimator: sklearn.ensemble.BaggingClassifier\n"
                                                          "params: {n_estimators: 3}\n"}, "  - model: bagged\n")
    assert code == 0, err


@pytest.mark.parametrize(("model", "params", "line", "message"), [
    ("logistic_regression", "{C: abc}", 9,
     "params.C: The 'C' parameter of LogisticRegression must be a float in the range (0.0, inf]. Got 'abc' instead."),
    ("random_forest", "{n_estimators: -5}", 9, "params.n_estimators: The 'n_estimators' parameter of "
                                               "RandomForestClassifier must be an int in the range [1, inf). Got -5"),
    ("svm", "{C: abc}", 9, "params.C: The 'C' parameter of SVC must be a float in the range (0.0, inf]. Got 'abc'"),
    ("xgboost", "{n_estimators: -5}", 9, "params.n_estimators: The 'n_estimators' parameter of XGBClassifier must be "
                                         "an int in the range [1, inf). Got -5 instead."),
    ("xgboost", "{max_depth: -1}", 9,
     "params.max_depth: value -1 for Parameter max_depth should be greater equal to 0"),
    ("xgboost", "{learning_rate: abc}", 9,
     "params.learning_rate: Invalid Parameter format for learning_rate expect float but value='abc'"),
    ("xgboost", "{max_depht: 3}", 9,
     'params.max_depht is not a parameter of XGBClassifier (did you mean "max_depth"?); XGBoost would ignore it'),
])
def test_bad_values_for_each_catalog_model_are_refused_with_file_model_and_line(project, capsys, model, params, line,
                                                                                message):
    code, err = validate_with(project, capsys, {}, f"  - model: {model}\n    params: {params}\n")
    assert code == 1
    path = project.experiments / "hostile.yaml"
    assert f'{path}: 1 problem(s):\n  - models[0] (line {line}): model "{model}": {message}' in err


def test_every_search_candidate_is_checked(project, capsys):
    code, err = validate_with(project, capsys, {}, "  - model: svm\n    search:\n      space:\n"
                                                   "        C: [0.3, -1, 3]\n        kernel: [rbf, nope]\n")
    assert code == 1
    assert ('models[0] (line 11): model "svm": search.space.C[1]: The \'C\' parameter of SVC must be a float in the '
            "range (0.0, inf]. Got -1 instead.") in err
    assert 'models[0] (line 12): model "svm": search.space.kernel[1]: The \'kernel\' parameter of SVC must be' in err
    code, err = validate_with(project, capsys, {}, "  - model: xgboost\n    search:\n      space:\n"
                                                   "        subsample: [0.5, 2.0]\n")
    assert 'search.space.subsample[1]: value 2 for Parameter subsample exceed bound [0,1]' in err


def test_a_bad_catalog_default_names_the_catalog_file_and_its_line(project, capsys):
    text = (project.models / "svm.yaml").read_text().replace("kernel: rbf", "kernel: rbff")
    code, err = validate_with(project, capsys, {"svm": text}, "  - model: svm\n")
    assert code == 1
    assert "params.kernel: The 'kernel' parameter of SVC must be a str among" in err
    line = text.splitlines().index("  kernel: rbff") + 1
    assert f"set in {project.models / 'svm.yaml'} (line {line})" in err


def test_the_train_step_refuses_the_same_model_before_fitting():
    """Airflow's parse does not import scikit-learn; the train task checks before it fits, and is not retried."""
    from airflow.sdk.definitions.retry_policy import RetryAction

    from dag_factory.airflow.dag import FactoryRetryPolicy
    from dag_factory.steps.pipeline import build_pipeline

    catalog = load_catalog(REPO / "models")[0]
    with pytest.raises(ModelConfigError, match=r'model "logistic_regression": params.solver: The \'solver\' parameter'):
        build_pipeline(catalog["logistic_regression"], ModelEntry(model="logistic_regression",
                                                                  params={"solver": "not_a_solver"}), ["x"], [])
    bad = CatalogEntry(name="tmpdir", estimator="sklearn.datasets._openml.TemporaryDirectory")
    with pytest.raises(ModelConfigError, match="tempfile.TemporaryDirectory, defined outside the allowed modules"):
        build_pipeline(bad, ModelEntry(model="tmpdir"), ["x"], [])
    from evaluation_support import quick_spec

    policy = FactoryRetryPolicy(quick_spec("q", "  - model: logistic_regression\n    retries: 3\n"))
    decision = policy.evaluate(ModelConfigError("bad"), 1, 4, {"model_name": "logistic_regression"})
    assert decision.action is RetryAction.FAIL


# --- YAML and names ---------------------------------------------------------------------------------------


def test_run_of_a_name_whose_file_does_not_parse_points_at_that_file(project, capsys):
    (project.experiments / "breast.yaml").write_text("experiment: breast\ndata: {source: sklearn:breast_cancer\n")
    (project.experiments / "other_file.yaml").write_text("experiment: wine_x\nmodels:\n\t- model: svm\n")
    code = main(["--project", str(project.root), "run", "breast"])
    err = capsys.readouterr().err
    assert code == 2 and "breast.yaml" in err and "the `{` opened on line 2 is never closed" in err
    code = main(["--project", str(project.root), "run", "wine_x"])
    err = capsys.readouterr().err
    assert code == 2 and "other_file.yaml" in err and "line 3 starts with a tab" in err


# --- a run's overrides ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("flags", "message"), [
    (["--cv-folds", "1"], "--cv-folds: 1 is refused as the spec's cv.folds would be: Input should be greater than or "
                          "equal to 2"),
    (["--cv-folds", "100000"], "--cv-folds: 100000 is refused as the spec's cv.folds would be: Input should be less "
                               "than or equal to 20"),
    (["--models", ","], "--models: no model named; name at least one of logistic_regression, random_forest"),
    (["--models", "logistic_regression,svn"], '--models: "svn" is not a model of hostile; its models are: '
                                             "logistic_regression, random_forest"),
])
def test_run_overrides_are_refused_by_the_spec_rules_before_airflow_starts(project, capsys, flags, message):
    (project.experiments / "hostile.yaml").write_text(fast_spec("hostile"), encoding="utf-8")
    assert main(["--project", str(project.root), "run", "hostile", *flags]) == 2
    err = capsys.readouterr().err
    assert err == f"error: the overrides of run hostile: 1 problem(s):\n  - {message}\n"
    assert not (project.root / "results").exists()  # refused before any run started


def test_a_trigger_s_params_go_through_the_same_checks(project):
    """Airflow checks the params' JSON schema at trigger time; the run applies them through the spec's rules."""
    from airflow.sdk.exceptions import ParamValidationError

    from dag_factory.airflow.dag import experiment_dag
    from dag_factory.workflow import Run

    path = project.experiments / "hostile.yaml"
    path.write_text(fast_spec("hostile"), encoding="utf-8")
    catalog = load_catalog(project.models)[0]
    spec = load_experiment(path, catalog, project_root=project.root)
    dag = experiment_dag(spec, catalog, project, path)
    cv_folds = dag.params.get_param("cv_folds")
    assert (cv_folds.schema["minimum"], cv_folds.schema["maximum"]) == (2, 20)  # from the spec's cv.folds
    for bad in (1, 21):
        with pytest.raises(ParamValidationError):
            cv_folds.resolve(bad)
    with pytest.raises(SpecError, match=r"params.cv_folds: 1 is refused as the spec's cv.folds would be"):
        Run.of(spec, catalog, project.root, project.root / "results", "r", cv_folds=1)
    with pytest.raises(SpecError, match="params.models: no model named"):
        Run.of(spec, catalog, project.root, project.root / "results", "r", models=[])
    assert Run.of(spec, catalog, project.root, project.root / "results", "r", cv_folds=4).spec.cv.folds == 4


def test_what_a_retry_cannot_fix_fails_at_once_and_what_it_may_fix_is_retried():
    from dag_factory.errors import (
        DataError, DownloadError, ModelError, RunFailed, TrackingError, UntrustedModel, is_permanent,
    )

    for permanent in (SpecError("x", ["y"]), DataError("x"), ModelConfigError("x"), UntrustedModel("x"), RunFailed("x")):
        assert is_permanent(permanent), permanent
    for transient in (DownloadError("x"), TrackingError("x"), ModelError("x"), OSError("x")):
        assert not is_permanent(transient), transient
