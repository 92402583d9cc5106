"""The model card of a champion: what it is, how it was measured, what it may be used for."""

from __future__ import annotations

import platform
from datetime import UTC, datetime
from importlib import metadata

from dag_factory.artifacts.layout import MODEL_FILE, champion_plot_name
from dag_factory.artifacts.records import (
    CardArtifact, CardConfusion, CardData, CardFeatures, CardModel, CardSelection, Decision, Leaderboard, ModelCard,
    RankedRow, RunMeta,
)
from dag_factory.spec.schema import ExperimentSpec

PACKAGES = ("apache-airflow", "scikit-learn", "xgboost-cpu", "xgboost", "pandas", "numpy", "joblib")


def model_card(spec: ExperimentSpec, board: Leaderboard, winner: RankedRow, meta: RunMeta,
               decision: Decision, evaluation_ground: dict) -> ModelCard:
    """What the promoted model is, how it was measured, and what it may be used for."""
    return ModelCard(
        experiment=spec.experiment,
        task=meta.task,
        description=spec.description,
        intended_use=(
            f"{(spec.description or spec.experiment).rstrip('.')}. Scores rows with the same columns as the training "
            "data. Decision support for a qualified person, not an autonomous decision; "
            "validate on your own population before use."
        ),
        limitations=_limitations(meta, winner),
        run_id=board.run_id,
        promoted_at=datetime.now(UTC).isoformat(timespec="seconds"),
        reason=decision.reason,
        previous_champion=decision.champion,
        model=CardModel(name=winner.name, family=winner.model, params=winner.params, chosen_params=winner.chosen_params),
        metric=board.metric,
        selection=CardSelection(ranking_rule=board.ranking_rule, require=board.require,
                                winner_reason=board.winner_reason, comparison_rule=board.comparison_rule),
        cv_protocol={**board.cv_protocol.model_dump(), "stratified": meta.task == "classification", "split": "training split only",
                     "train_rows": meta.train_rows},
        cv=winner.cv,
        test=winner.test,
        test_confusion_matrix=CardConfusion(classes=meta.classes, rows_true_columns_predicted=winner.test_confusion_matrix),
        data=CardData(target=meta.target, fingerprint=meta.fingerprint, rows=meta.rows, train_rows=meta.train_rows,
                      test_rows=meta.test_rows, classes=meta.classes, positive_class=meta.positive_class,
                      features=meta.features, categorical=meta.categorical, sample=meta.sample),
        config_fingerprint=meta.config_fingerprint,
        threshold=winner.threshold.value,
        threshold_selection=winner.threshold,
        final_fit=final_fit_note(winner, meta),
        top_features=CardFeatures(kind=winner.importance_kind, values=winner.top_features),
        plots={kind: champion_plot_name(kind) for kind in winner.plots},
        artifact=CardArtifact(file=MODEL_FILE, sha256=winner.model_sha256),
        packages=package_versions(),
        evaluation_ground=evaluation_ground,
    )


def final_fit_note(winner: RankedRow, meta: RunMeta) -> str:
    """What the saved model was fitted on, and which figures describe it."""
    if winner.fitted_on == "all":
        return (f"refit on all {meta.rows} rows (training split and held-out test) after selection "
                "(selection.final_fit: all); the held-out test figures describe the model fitted on the training "
                "split only, and no held-out figure describes this artifact")
    return (f"fitted on the {meta.train_rows} rows of the training split (selection.final_fit: train); the "
            "held-out test figures describe this artifact")


def _limitations(meta: RunMeta, winner: RankedRow) -> str:
    """Plain words on how far the numbers carry."""
    text = (
        f"Trained on {meta.train_rows} rows of one data set; metrics are estimates on data like it and may not "
        "hold under a shift in population, measurement or prevalence."
    )
    if meta.task == "regression":
        rmse, mae = winner.cv["rmse"], winner.cv["mae"]
        text += (f" In cross-validation its predictions of {meta.target} were off by {mae.mean:.4g} on average "
                 f"(MAE; RMSE {rmse.mean:.4g} ± {rmse.std:.2g} over folds), in the target's own unit; it does not "
                 "extrapolate reliably beyond the range of the training data.")
    if meta.positive_class is not None:
        recall = winner.cv["recall"]
        text += (f" In cross-validation it missed about {1 - recall.mean:.1%} (± {recall.std:.1%}) of "
                 f"{meta.positive_class} cases at the decision threshold; never use it to rule a case out alone.")
    return text


def package_versions() -> dict[str, str]:
    """Versions of the packages that produced the artifact (needed to load it safely)."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
