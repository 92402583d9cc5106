"""The model card as a page a person reads (model_card.md), from the card's JSON record."""

from __future__ import annotations

from dag_factory.artifacts.records import ModelCard
from dag_factory.render.templates import render
from dag_factory.spec.schema import LOWER_IS_BETTER


def card_markdown(card: ModelCard) -> str:
    """model_card.md: intended use, limitations, provenance, threshold, metrics, plots, packages."""
    return render(
        "model_card.md.j2", card=card, gates=describe_gates(card.selection.require),
        metric_rows=[[name, f"{card.cv[name].mean:.4f}", f"{card.cv[name].std:.4f}", f"{value:.4f}"]
                     for name, value in card.test.items()],
        confusion_rows=[[name, *row] for name, row in zip(card.test_confusion_matrix.classes,
                                                          card.test_confusion_matrix.rows_true_columns_predicted,
                                                          strict=True)],
        features=", ".join(f"{name} ({value:+.3f})" for name, value in card.top_features.values.items()))


def describe_gates(require: dict[str, float]) -> str:
    """The selection gates in words: 'recall >= 0.9, brier <= 0.1', or 'none'."""
    return ", ".join(f"{m} {'<=' if m in LOWER_IS_BETTER else '>='} {v}" for m, v in require.items()) or "none"
