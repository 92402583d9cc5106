"""Command line: validate specs, run an experiment through Airflow, show leaderboards, export the schema."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dag_factory.errors import DagFactoryError, SpecError, did_you_mean
from dag_factory.files import read_json
from dag_factory.layout import Project, best_dir
from dag_factory.storage import StoragePath, is_local
from dag_factory.loader import load_catalog, load_experiment, load_experiments


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``dag-factory`` and ``python -m dag_factory``."""
    parser = argparse.ArgumentParser(prog="dag-factory", description=__doc__)
    parser.add_argument("--project", type=Path, default=None, help="project folder (default: auto-detected)")
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("validate", help="check experiment specs; non-zero exit on any error")
    check.add_argument("specs", nargs="*", type=Path, help="spec files (default: every file in experiments/)")
    check.add_argument("--shallow", action="store_true",
                       help="skip importing each estimator to check its param names (what Airflow's parser sees)")

    run = commands.add_parser("run", help="run one experiment end to end through Airflow and print its leaderboard")
    run.add_argument("experiment")
    run.add_argument("--force", action="store_true", help="retrain even if the data is unchanged")
    run.add_argument("--models", help="comma-separated subset of the spec's models")
    run.add_argument("--cv-folds", type=int, help="override the spec's CV folds")

    board = commands.add_parser("leaderboard", help="print the latest leaderboard of an experiment")
    board.add_argument("experiment")
    board.add_argument("--json", action="store_true", help="print the raw metrics.json")

    commands.add_parser("schema", help="print the JSON Schema of an experiment spec")

    score = commands.add_parser("predict", help="score a CSV of new rows with an experiment's champion")
    score.add_argument("experiment")
    score.add_argument("input", type=Path, help="CSV with the columns the model was trained on")
    score.add_argument("-o", "--output", type=Path, help="where to write predictions (default: INPUT.predictions.csv)")

    ui = commands.add_parser("ui", help="start the Airflow UI (airflow standalone) on localhost with login on")
    ui.add_argument("--port", type=int, default=8080, help="port of the UI and REST API (default: 8080)")

    args = parser.parse_args(argv)
    project = Project.locate(args.project)
    try:
        return HANDLERS[args.command](project, args)
    except DagFactoryError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def cmd_validate(project: Project, args: argparse.Namespace) -> int:
    """Validate specs; print one line per valid spec and every problem of the others."""
    catalog, catalog_errors = load_catalog(project.models)
    for error in catalog_errors.values():
        print(error, file=sys.stderr)
    folder = load_experiments(project.experiments, catalog, catalog_errors)
    specs, errors = dict(folder.specs), dict(folder.errors)
    if args.specs:  # files in experiments/ are judged with their neighbours (name clashes); others alone
        wanted = [p.resolve() for p in args.specs]
        specs = {p: s for p, s in specs.items() if p.resolve() in wanted}
        errors = {p: e for p, e in errors.items() if p.resolve() in wanted}
        for path in args.specs:
            if not path.is_file():
                errors[path] = SpecError(str(path), ["no such file; give the path of an experiment YAML file"])
            elif path.resolve().parent != project.experiments.resolve():
                try:
                    specs[path] = load_experiment(path, catalog, catalog_errors)
                except DagFactoryError as err:
                    errors[path] = err
    if not args.shallow:
        errors.update(_deep_errors(specs, catalog))
    for path, spec in specs.items():
        if path not in errors:
            print(f"ok: {path} -> DAG {spec.experiment} ({len(spec.models)} models: {', '.join(spec.model_names())})")
    for error in errors.values():
        print(error, file=sys.stderr)
    return 1 if errors or catalog_errors else 0


def _deep_errors(specs: dict, catalog: dict) -> dict:
    """Import every estimator and check each param name (slower: imports scikit-learn and XGBoost)."""
    from dag_factory.steps.pipeline import estimator_params

    errors = {}
    for path, spec in specs.items():
        problems = []
        for entry in spec.models:
            try:
                estimator_params(catalog[entry.model], entry)
            except DagFactoryError as err:
                problems.append(str(err))
        if problems:
            errors[path] = SpecError(str(path), problems)
    return errors


def cmd_run(project: Project, args: argparse.Namespace) -> int:
    """Run the experiment's DAG with dag.test(), then print the leaderboard and the champion."""
    from dag_factory.report import leaderboard_table
    from dag_factory.runner import run_experiment
    from dag_factory.tasks import SKIP_FILE, STOP_REASON_FILE

    spec = project.experiment(args.experiment)
    conf: dict = {"force": args.force}
    if args.models:
        conf["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
        for name in conf["models"]:
            if name not in spec.model_names():
                raise SpecError(f"--models {args.models}", [
                    f'"{name}" is not a model of {spec.experiment}{did_you_mean(name, spec.model_names())}; '
                    f"its models are: {', '.join(spec.model_names())}"])
    if args.cv_folds:
        conf["cv_folds"] = args.cv_folds
    outcome = run_experiment(project, spec.experiment, conf)
    print()
    print(f"DAG run {outcome.run_id}: {outcome.state}")
    print(f"Run folder: {outcome.folder}")
    board_path = outcome.folder / "metrics.json"
    if board_path.exists():
        print()
        print(leaderboard_table(read_json(board_path)))
    for note, key in ((SKIP_FILE, "reason"), (STOP_REASON_FILE, "error")):  # why the run stopped early
        if not board_path.exists() and (outcome.folder / "data" / note).exists():
            print(read_json(outcome.folder / "data" / note)[key])
    print()
    print(_champion_line(project.results_for(spec), spec.experiment))
    return 0 if outcome.state == "success" else 1


def _champion_line(results: StoragePath, experiment: str) -> str:
    """Where the champion's model is: the stable link on a disk, its version folder on an object store."""
    from dag_factory.steps.champion_store import champion_store

    folder = champion_store(results, experiment).current()
    if folder is None:
        return "No champion has been promoted yet."
    return f"Champion model: {(best_dir(results, experiment) if is_local(results) else folder) / 'model.joblib'}"


def cmd_leaderboard(project: Project, args: argparse.Namespace) -> int:
    """Print the newest run's leaderboard of an experiment."""
    from dag_factory.report import leaderboard_table

    spec = project.experiment(args.experiment)  # a known, safe name
    runs = project.results_for(spec) / "runs" / args.experiment
    boards = sorted(runs.glob("*/metrics.json"), key=lambda p: p.stat().st_mtime) if runs.exists() else []
    if not boards:
        print(f"error: no leaderboard for {args.experiment} under {runs}; run `dag-factory run {args.experiment}` first",
              file=sys.stderr)
        return 1
    board = read_json(boards[-1])
    print(json.dumps(board, indent=2) if args.json else f"{boards[-1]}\n\n{leaderboard_table(board)}")
    return 0


def cmd_schema(project: Project, args: argparse.Namespace) -> int:
    """Print the JSON Schema of the experiment spec (for editor completion and checks)."""
    from dag_factory.spec import ExperimentSpec

    print(json.dumps(ExperimentSpec.model_json_schema(), indent=2))
    return 0


def cmd_predict(project: Project, args: argparse.Namespace) -> int:
    """Score new rows with the promoted model, after checking its SHA-256."""
    from dag_factory.predict import predict_file

    spec = project.experiment(args.experiment)
    output = args.output or args.input.with_suffix(".predictions.csv")
    print(predict_file(project.results_for(spec), spec.experiment, args.input, output))
    return 0


def cmd_ui(project: Project, args: argparse.Namespace) -> int:
    """Serve the project's DAGs with `airflow standalone` until Ctrl+C."""
    from dag_factory.deploy import run_ui

    return run_ui(project, args.port)


HANDLERS = {"validate": cmd_validate, "run": cmd_run, "leaderboard": cmd_leaderboard, "schema": cmd_schema,
            "predict": cmd_predict, "ui": cmd_ui}
