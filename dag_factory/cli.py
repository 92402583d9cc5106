"""Command line: validate specs, run an experiment through Airflow, show leaderboards, export the schema."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dag_factory.errors import DagFactoryError
from dag_factory.project import Project


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
    run.add_argument("-v", "--verbose", action="store_true",
                     help="print Airflow's whole output as it comes (default: one line per task; all of it is in "
                          "the run's run.log either way)")
    answer = run.add_mutually_exclusive_group()
    answer.add_argument("--approve", action="store_const", const="approve", dest="approval", default="ask",
                        help="with promotion.approval: required, approve a new champion (default: ask on a terminal, "
                             "else reject)")
    answer.add_argument("--reject", action="store_const", const="reject", dest="approval",
                        help="with promotion.approval: required, keep the champion")

    for verb in ("approve", "reject"):
        respond = commands.add_parser(verb, help=f"{verb} the new champion a run of EXPERIMENT waits on "
                                                 "(the project's Airflow; same as Required actions in the UI)")
        respond.add_argument("experiment")
        respond.add_argument("--run", help="the Airflow run id (default: the newest run waiting for approval)")

    board = commands.add_parser("leaderboard", help="print the latest leaderboard of an experiment")
    board.add_argument("experiment")
    board.add_argument("--json", action="store_true", help="print the raw leaderboard.json")

    history = commands.add_parser("history", help="list an experiment's champions: promotions and rollbacks, in order")
    history.add_argument("experiment")

    back = commands.add_parser("rollback", help="make an earlier champion the champion again (atomic, verified)")
    back.add_argument("experiment")
    back.add_argument("--to", metavar="VERSION",
                      help="a version name or a number from `dag-factory history` (default: the previous champion)")
    back.add_argument("--reason", help="why, recorded in the history")

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
    from dag_factory.spec.validation import validate

    result = validate(project.experiments, project.models, args.specs, deep=not args.shallow,
                      project_root=project.root)
    for error in result.catalog_errors.values():
        print(error, file=sys.stderr)
    for path, spec in result.valid.items():
        print(f"ok: {path} -> DAG {spec.experiment} ({len(spec.models)} models: {', '.join(spec.model_names())})")
    for error in result.errors.values():
        print(error, file=sys.stderr)
    return 1 if result.errors or result.catalog_errors else 0


def cmd_run(project: Project, args: argparse.Namespace) -> int:
    """Run the experiment's DAG with dag.test(), then print the leaderboard and the champion."""
    from dag_factory.airflow.runner import run_experiment
    from dag_factory.artifacts.champion_store import champion_model_path
    from dag_factory.render.summary import run_summary
    from dag_factory.spec.overrides import CLI_NAMES, apply_overrides
    from dag_factory.steps.outcome import ending

    spec = project.experiment(args.experiment)
    models = None if args.models is None else [m.strip() for m in args.models.split(",") if m.strip()]
    apply_overrides(spec, models, args.cv_folds, names=CLI_NAMES)  # refused here with the spec's own rules
    conf: dict = {"force": args.force}
    if models is not None:
        conf["models"] = models
    if args.cv_folds is not None:
        conf["cv_folds"] = args.cv_folds
    outcome = run_experiment(project, spec.experiment, conf, approval=args.approval, verbose=args.verbose)
    end = ending(spec, outcome.files, outcome.state)
    print(run_summary(outcome.files, outcome.run_id, outcome.state,
                      champion_model_path(project.results_for(spec), spec.experiment), f"{end.line} (exit code {end.code})"))
    print(f"Airflow's whole log of the run: {outcome.files.log}")
    return end.code


def cmd_leaderboard(project: Project, args: argparse.Namespace) -> int:
    """Print the newest run's leaderboard of an experiment."""
    from dag_factory.artifacts.layout import leaderboards, runs_dir
    from dag_factory.artifacts.records import Leaderboard
    from dag_factory.render.tables import leaderboard_table

    spec = project.experiment(args.experiment)  # a known, safe name
    results = project.results_for(spec)
    boards = leaderboards(results, spec.experiment)
    if not boards:
        print(f"error: no leaderboard for {args.experiment} under {runs_dir(results, spec.experiment)}; "
              f"run `dag-factory run {args.experiment}` first", file=sys.stderr)
        return 1
    board = Leaderboard.read(boards[-1])
    print(board.model_dump_json(indent=2) if args.json else f"{boards[-1]}\n\n{leaderboard_table(board)}")
    return 0


def cmd_answer(project: Project, args: argparse.Namespace) -> int:
    """Approve or reject the approval request of a run, as its reviewer."""
    import getpass

    from dag_factory.airflow.answers import record_answer

    spec = project.experiment(args.experiment)
    code, line = record_answer(project, spec.experiment, args.run, args.command == "approve", getpass.getuser())
    print(line, file=sys.stdout if code == 0 else sys.stderr)
    return code


def cmd_history(project: Project, args: argparse.Namespace) -> int:
    """Print every champion of an experiment, marking the current one."""
    from dag_factory.render.tables import history_table, refusals_table
    from dag_factory.steps.rollback import champion_history, refused_promotions

    spec = project.experiment(args.experiment)
    results = project.results_for(spec)
    history, refused = champion_history(results, spec.experiment), refused_promotions(results, spec.experiment)
    if not history.entries and not refused:
        print(f"error: {args.experiment} has no champion yet; run `dag-factory run {args.experiment}` first",
              file=sys.stderr)
        return 1
    print(history_table(history.entries, history.current) if history.entries else "No champion yet.")
    if refused:
        print(f"\nNot promoted for want of an approval:\n{refusals_table(refused)}")
    return 0


def cmd_rollback(project: Project, args: argparse.Namespace) -> int:
    """Restore an earlier champion and say which."""
    from dag_factory.steps.rollback import rollback

    spec = project.experiment(args.experiment)
    entry = rollback(project.results_for(spec), spec.experiment, args.to, args.reason)
    print(f"ROLLED BACK: {spec.experiment} champion is now {entry.model} from run {entry.run_id} "
          f"(CV {entry.metric} {entry.score:.4f}), version {entry.version}, a copy of {entry.restored_from}")
    if spec.notify is not None:
        from dag_factory.airflow.notifier import deliver
        from dag_factory.render.notice import rollback_notice

        for failure in deliver(rollback_notice(spec.experiment, entry), spec.notify):
            print(f"warning: notification not delivered: {failure}", file=sys.stderr)
    if spec.tracking is not None:
        from dag_factory.tracking import move_champion_alias

        print(f"MLflow: {move_champion_alias(spec, project.results_for(spec), entry.run_id)}")
    return 0


def cmd_schema(project: Project, args: argparse.Namespace) -> int:
    """Print the JSON Schema of the experiment spec (for editor completion and checks)."""
    from dag_factory.spec.schema import ExperimentSpec

    print(json.dumps(ExperimentSpec.model_json_schema(), indent=2))
    return 0


def cmd_predict(project: Project, args: argparse.Namespace) -> int:
    """Score new rows with the promoted model, after checking its SHA-256."""
    from dag_factory.steps.predict import predict_file

    spec = project.experiment(args.experiment)
    output = args.output or args.input.with_suffix(".predictions.csv")
    print(predict_file(project.results_for(spec), spec.experiment, args.input, output).describe())
    return 0


def cmd_ui(project: Project, args: argparse.Namespace) -> int:
    """Serve the project's DAGs with `airflow standalone` until Ctrl+C."""
    from dag_factory.airflow.standalone import run_ui

    return run_ui(project, args.port)


HANDLERS = {"validate": cmd_validate, "run": cmd_run, "leaderboard": cmd_leaderboard, "history": cmd_history,
            "approve": cmd_answer, "reject": cmd_answer,
            "rollback": cmd_rollback, "schema": cmd_schema,
            "predict": cmd_predict, "ui": cmd_ui}
