"""Spec faults: each broken file is refused with one clear message and never hides another DAG.

All the broken files sit in one project at once; the project's DagBag is parsed once, as
Airflow's dag-processor would parse dags/, and every fault is checked in it and in
``dag-factory validate``.
"""

from __future__ import annotations

import sys

import pytest

from conftest import REPO, copy_project, fast_spec, run_dag
from dag_factory.cli import main
from dag_factory.errors import ModelError
from dag_factory.project import Project

GOOD_DAGS = {"breast_cancer", "quick"}
EVIL_CATALOG = "description: not a classifier\nestimator: os.system\n"
QUICK_LR = "  - model: logistic_regression\n"

#: file stem -> (spec text, text the user must see in validate and in the stand-in DAG)
FAULTS: dict[str, tuple[str, str]] = {
    "syntax_error": ("experiment: syntax_error\nmodels: [\n  - model: svm\n",
                     "the `[` opened on line 2 is never closed; close it with `]`"),
    "tab_indent": (fast_spec("tab_indent").replace("  positive_class", "\tpositive_class"),
                   "line 5 starts with a tab; YAML indents with spaces"),
    "python_tag": (fast_spec("python_tag") + "description: !!python/object/apply:os.system [touch /tmp/pwned]\n",
                   "line 12: tag `!!python/object/apply` is not allowed in specs"),
    "source_outside": (fast_spec("source_outside").replace("sklearn:breast_cancer", "../../../../../../etc/shadow"),
                       'data.source (line 4): "../../../../../../etc/shadow" resolves to /etc/shadow, outside the '
                       "data roots"),
    "file_url_outside": (fast_spec("file_url_outside").replace("sklearn:breast_cancer", "file:///etc/passwd"),
                         'data.source (line 4): "file:///etc/passwd" resolves to /etc/passwd, outside the data roots'),
    "chained_url": (fast_spec("chained_url").replace("sklearn:breast_cancer", "simplecache::file:///etc/passwd"),
                    "data.source (line 4): \"simplecache::file:///etc/passwd\" reads local files through an fsspec "
                    "wrapper"),
    "unknown_key": (fast_spec("unknown_key") + "selecton: {metric: roc_auc}\n",
                    'selecton (line 12): unknown key "selecton" (did you mean "selection"?)'),
    "misspelt_list_key": (fast_spec("misspelt_list_key").replace("models:", "modles:"),
                          'modles (line 7): unknown key "modles" (did you mean "models"?)'),
    "wrong_type": (fast_spec("wrong_type").replace("folds: 3", "folds: many"),
                   "cv.folds (line 6): Input should be a valid integer"),
    "unknown_model": (fast_spec("unknown_model", "  - model: logistc_regression\n"),
                      'unknown model "logistc_regression" (did you mean "logistic_regression"?)'),
    "duplicate_models": (fast_spec("duplicate_models", QUICK_LR * 2),
                         'model name "logistic_regression" appears twice; give one of them a distinct "name:"'),
    "unsafe_name": (fast_spec("../x"), 'experiment (line 1): "../x" is not a safe name; use lower-case letters'),
    "copy_of_breast_cancer": (fast_spec("breast_cancer"),
                              'the name "breast_cancer" is already used by breast_cancer.yaml'),
    "secret_key": (fast_spec("secret_key").replace("  positive_class", "  api_token: abc123\n  positive_class"),
                   "data.api_token (line 5): looks like a secret; specs are committed to git"),
    "secret_url": (fast_spec("secret_url").replace("sklearn:breast_cancer", "https://ann:hunter2@example.com/d.csv"),
                   "data.source (line 4): the URL holds a user name and password"),
    "bad_schedule": (fast_spec("bad_schedule") + "schedule: every monday\n",
                     'schedule (line 12): "every monday" is not an Airflow schedule; use a cron expression'),
    "repeated_key": (fast_spec("repeated_key") + "models:\n  - model: svm\n",
                     'key "models" is written twice in the same mapping (first on line 7)'),
    "disallowed_estimator": (fast_spec("disallowed_estimator", "  - model: evil\n"),
                             'estimator "os.system" is not in an allowed module (sklearn., xgboost.)'),
    "results_on_a_web_page": (fast_spec("results_on_a_web_page") + "results:\n  root: https://example.com/ml\n",
                              "results.root (line 13): an http(s) URL cannot hold results; use a folder or an object"),
    "results_scheme_unknown": (fast_spec("results_scheme_unknown") + "results:\n  root: nosuch://bucket/ml\n",
                               'results.root (line 13): unknown URL scheme "nosuch://"'),
    "tracking_typo": (fast_spec("tracking_typo") + "tracking:\n  uri: http://mlflow:5000\n  retrys: 3\n",
                      'tracking.retrys (line 14): unknown key "retrys" (did you mean "retries"?)'),
}


@pytest.fixture(scope="module")
def broken_project(tmp_path_factory) -> Project:
    """A project holding the shipped spec, a good quick spec, and one file per fault."""
    project = copy_project(tmp_path_factory.mktemp("spec-faults") / "project")
    (project.models / "evil.yaml").write_text(EVIL_CATALOG)
    (project.experiments / "quick.yaml").write_text(fast_spec("quick"))
    for stem, (text, _) in FAULTS.items():
        (project.experiments / f"{stem}.yaml").write_text(text)
    return project


@pytest.fixture(scope="module")
def bag(broken_project):
    """The project's dags/ parsed by Airflow's DagBag."""
    from test_dags import dagbag

    return dagbag(broken_project)


def validate(project: Project, capsys, *args: str) -> tuple[int, str, str]:
    """Run ``dag-factory validate`` in-process: exit code, stdout, stderr."""
    code = main(["--project", str(project.root), "validate", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("stem", sorted(set(FAULTS) - {"copy_of_breast_cancer"}))  # a clash needs the folder
def test_validate_names_the_file_key_and_fix_and_exits_non_zero(broken_project, capsys, stem):
    path = broken_project.experiments / f"{stem}.yaml"
    code, out, err = validate(broken_project, capsys, str(path))
    assert code == 1
    assert str(path) in err and FAULTS[stem][1] in err
    assert "ok:" not in out


def test_validate_of_the_folder_lists_every_broken_file_and_keeps_the_good_ones(broken_project, capsys):
    code, out, err = validate(broken_project, capsys)
    assert code == 1
    for stem, (_, message) in FAULTS.items():
        assert f"{stem}.yaml" in err and message in err
    assert "-> DAG breast_cancer (4 models" in out and "-> DAG quick (2 models" in out


@pytest.mark.parametrize("stem", sorted(FAULTS))
def test_each_broken_spec_is_a_stand_in_dag_and_an_import_error_and_hides_no_other_dag(bag, broken_project, stem):
    listed = bag.import_errors[str(broken_project.dags / "spec_errors.py")].splitlines()
    assert any(line.startswith(f"{broken_project.experiments / stem}.yaml: ") and FAULTS[stem][1] in line
               for line in listed)
    assert GOOD_DAGS <= set(bag.dag_ids)
    stand_in = bag.dags[f"invalid_spec__{stem}"]
    assert FAULTS[stem][1] in stand_in.doc_md
    assert "invalid-spec" in stand_in.tags
    assert [t.task_id for t in stand_in.tasks] == ["spec_error"]


def test_the_first_owner_of_a_name_keeps_its_dag(bag):
    assert "breast_cancer.yaml" in bag.dags["breast_cancer"].doc_md
    assert len(bag.dags["breast_cancer"].params["models"]) == 4  # the shipped spec, not the 1-model copy


def test_a_stand_in_dag_survives_airflow_serialization_with_its_error(bag):
    from airflow.serialization.serialized_objects import DagSerialization

    stand_in = bag.dags["invalid_spec__unknown_model"]
    restored = DagSerialization.from_dict(DagSerialization.to_dict(stand_in))
    assert restored.dag_id == "invalid_spec__unknown_model"
    assert 'unknown model "logistc_regression"' in restored.doc_md
    assert restored.description.startswith("INVALID SPEC: models[0].model")  # its one problem


@pytest.mark.airflow
def test_triggering_a_stand_in_dag_fails_with_the_spec_error(broken_project, airflow_db):
    import sqlite3

    outcome = run_dag(broken_project, "invalid_spec__unknown_model")
    assert outcome.state == "failed"
    assert 'unknown model "logistc_regression" (did you mean "logistic_regression"?)' in (
        outcome.folder / "run.log").read_text()
    with sqlite3.connect(airflow_db) as conn:  # serialized and stored like any DAG the UI lists
        rows = conn.execute("SELECT dag_id FROM serialized_dag WHERE dag_id = ?", ("invalid_spec__unknown_model",))
        assert rows.fetchall()


def test_an_unknown_param_name_is_caught_by_validate_not_at_parse_time(project, capsys, tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text(fast_spec("typo", "  - model: logistic_regression\n    params: {Cc: 1.0}\n"))
    assert validate(project, capsys, "--shallow", str(path))[0] == 0  # what the parser checks: no scikit-learn
    code, _, err = validate(project, capsys, str(path))
    assert code == 1
    assert 'model "logistic_regression": params.Cc is not a parameter of LogisticRegression (did you mean "C"?)' in err


def test_a_disallowed_estimator_module_is_refused_before_it_is_imported(tmp_path, monkeypatch):
    from dag_factory.spec.estimators import import_estimator

    (tmp_path / "planted_module.py").write_text("raise SystemExit('planted module was imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModelError, match=r'estimator "planted_module.Evil" is not in an allowed module'):
        import_estimator("planted_module.Evil")
    assert "planted_module" not in sys.modules
    monkeypatch.setenv("DAG_FACTORY_ALLOWED_MODULES", "planted_module")
    with pytest.raises(SystemExit, match="planted module was imported"):  # allowed: now it is imported
        import_estimator("planted_module.Evil")


def test_a_broken_catalog_entry_breaks_only_the_experiments_using_it(bag):
    assert "invalid_spec__disallowed_estimator" in bag.dag_ids
    assert {"breast_cancer", "quick"} <= set(bag.dag_ids)
    assert "invalid_spec__evil" not in bag.dag_ids  # the catalog file itself is not an experiment


def test_a_spec_airflow_rejects_after_validation_becomes_a_stand_in(broken_project, tmp_path, monkeypatch):
    """The factory's last line of defence: a DAG that fails Airflow's own checks."""
    from dag_factory.airflow import dag as factory

    text = fast_spec("quick2") + f"tags: [{'x' * 150}]\n"  # Airflow caps a tag at 100 characters
    experiments = tmp_path / "experiments"
    experiments.mkdir()
    (experiments / "quick2.yaml").write_text(text)
    (experiments / "quick.yaml").write_text(fast_spec("quick"))
    monkeypatch.setenv("DAG_FACTORY_EXPERIMENTS", str(experiments))
    dags = factory.build_dags(broken_project)
    assert "quick" in dags
    assert "Airflow cannot build the DAG from this spec" in dags["invalid_spec__quick2"].doc_md


@pytest.mark.parametrize(("section", "module", "extra", "where"), [
    ("results:\n  root: s3://team-bucket/ml\n", "s3fs", "s3", "results.root (line 13)"),
    ("tracking:\n  uri: http://mlflow.internal:5000\n", "mlflow", "mlflow", "tracking (line 12)"),
])
def test_a_spec_needing_a_missing_extra_names_the_extra_to_install(tmp_path, monkeypatch, section, module, extra,
                                                                   where):
    from dag_factory.spec import extras
    from dag_factory.errors import SpecError
    from dag_factory.spec.loader import load_catalog, load_experiment

    monkeypatch.setattr(extras, "installed", lambda name: name != module)  # as if its package were not installed
    path = tmp_path / "needs_extra.yaml"
    path.write_text(fast_spec("needs_extra") + section)
    with pytest.raises(SpecError) as refused:
        load_experiment(path, load_catalog(REPO / "models")[0])
    assert f"{where}: " in str(refused.value)
    assert f"install the {extra} extra: pip install 'dag-factory-experiments[{extra}]'" in str(refused.value)


@pytest.mark.parametrize(("text", "loc", "line"), [
    ("a: 1\nmodles:\n  k: 1\n", ("modles",), 2),                        # block mapping
    ("a: 1\nmodles:\n  - x\n  - y\n", ("modles",), 2),                   # block sequence
    ("a: 1\nmodles:\n- x\n", ("modles",), 2),                            # block sequence, not indented
    ("a: 1\nmodles:\n\n  # a comment\n  k: 1\n", ("modles",), 2),        # blank line and comment first
    ("a: 1\nmodles: {k: 1}\n", ("modles",), 2),                           # flow mapping
    ("a: 1\nmodles: [x, y]\n", ("modles",), 2),                           # flow sequence
    ("a: 1\nmodles: x\n", ("modles",), 2),                                # scalar
    ("a:\n  b:\n    c:\n      - 1\n", ("a", "b", "c"), 3),              # nested keys
    ("m:\n  - model: x\n  - model: y\n    params:\n      C: 1\n", ("m", 1, "params"), 4),
    ("m:\n  - model: x\n  -\n    model: y\n", ("m", 1), 4),              # an item starts at its first node
    ("a:\n  b: 1\n", ("a", "nosuch"), 1),                                 # a missing key: its mapping's key
])
def test_a_key_is_reported_on_its_own_line_whatever_its_value(tmp_path, text, loc, line):
    from dag_factory.spec.yaml_source import YamlDocument

    path = tmp_path / "shape.yaml"
    path.write_text(text)
    assert YamlDocument.read(path).line(loc) == f" (line {line})"


def test_an_unknown_trigger_conf_key_is_refused_with_the_nearest_param():
    from dag_factory.errors import SpecError
    from dag_factory.spec.overrides import refuse_unknown_conf

    params = ["models", "cv_folds", "force"]
    refuse_unknown_conf({"models": ["svm"], "force": True}, params, "bc")
    refuse_unknown_conf(None, params, "bc")
    with pytest.raises(SpecError) as refused:
        refuse_unknown_conf({"modelz": ["svm"], "cv_fold": 3, "force": True}, params, "bc")
    assert refused.value.problems == [
        '"cv_fold" is not a param of this DAG (did you mean "cv_folds"?); its params are: models, cv_folds, force',
        '"modelz" is not a param of this DAG (did you mean "models"?); its params are: models, cv_folds, force']


def test_daily_spark_example_is_a_valid_spec(monkeypatch) -> None:
    """The README's daily example on the Spark engine reads as it says (its data folder added to the data roots)."""
    from dag_factory.spec.loader import load_catalog, load_experiment

    monkeypatch.setenv("DAG_FACTORY_DATA_ROOTS", "/srv/data")
    spec = load_experiment(REPO / "examples" / "daily_partitions.yaml", load_catalog(REPO / "models")[0])
    assert (spec.schedule, spec.data.engine, spec.data.incremental) == ("@daily", "spark", True)
    assert spec.data.spark.sample_rows == 200_000


def test_incremental_data_needs_the_spark_engine() -> None:
    from pydantic import ValidationError

    from dag_factory.spec.schema import DataSpec

    with pytest.raises(ValidationError, match="'incremental: true' needs 'engine: spark'"):
        DataSpec(source="data/days", incremental=True)


def test_spark_engine_without_pyspark_is_refused_with_the_extra(tmp_path, monkeypatch) -> None:
    from dag_factory.errors import SpecError
    from dag_factory.spec import extras
    from dag_factory.spec.loader import load_catalog, load_experiment

    monkeypatch.setattr(extras, "installed", lambda module: module != "pyspark")
    (tmp_path / "experiments").mkdir()
    path = tmp_path / "experiments" / "big.yaml"
    path.write_text("experiment: big\ndata:\n  source: data/big.parquet\n  engine: spark\n"
                    "models: [{model: logistic_regression}]\n")
    with pytest.raises(SpecError, match=r"data.engine \(line 4\): engine spark needs the pyspark package; "
                                        r"install the spark extra"):
        load_experiment(path, load_catalog(REPO / "models")[0])


def test_a_spec_may_tune_spark_but_not_load_code_into_it() -> None:
    from pydantic import ValidationError

    from dag_factory.spec.schema import SparkSpec

    assert SparkSpec(config={"spark.driver.memory": "4g", "spark.sql.shuffle.partitions": "8"}).config
    for key in ("spark.jars", "spark.driver.extraJavaOptions", "spark.plugins", "spark.sql.extensions"):
        with pytest.raises(ValidationError, match=f"{key}: a spec may set only Spark's memory"):
            SparkSpec(config={key: "x"})
