"""Selection you can trust: paired intervals on the same folds, the simplicity rule among ties, the chance
baseline, and promotion only on a credible gain. Real training on small data whose right answer is known."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from sklearn.datasets import make_classification

from dag_factory.artifacts.records import Leaderboard, RankedRow
from dag_factory.render.tables import leaderboard_table
from dag_factory.steps.paired import compare, corrected_interval, is_tied
from dag_factory.steps.select import choose_winner
from data_helpers import write_features
from evaluation_support import run_steps, spec_from_text


def write_data(folder: Path, x: np.ndarray, y: np.ndarray) -> Path:
    """A CSV with features f0..fn and a target 'label' named yes/no."""
    return write_features(folder, x, "label", np.where(y == 1, "yes", "no"))


def spec_for(name: str, source: Path, models: str, extra: str = "") -> str:
    return (f"experiment: {name}\nretries: 0\ndata: {{source: '{source}', target: label, positive_class: 'yes'}}\n"
            f"cv: {{folds: 5, repeats: 1, seed: 3}}\nmodels:\n{models}{extra}")


def board_of(folder: Path) -> Leaderboard:
    return Leaderboard.read(folder / "leaderboard.json")


@pytest.fixture(scope="module")
def separable(tmp_path_factory) -> Path:
    """Five informative features spread over ten: a linear model finds them all, a one-split tree one of them."""
    x, y = make_classification(n_samples=300, n_features=10, n_informative=5, n_redundant=0, class_sep=1.0,
                               random_state=7)
    return write_data(tmp_path_factory.mktemp("separable"), x, y)


# --- the interval ------------------------------------------------------------------------------------------

def test_the_corrected_interval_is_the_nadeau_bengio_formula():
    diff = np.array([0.01, 0.02, 0.03, 0.02, 0.02])
    mean, low, high, p = corrected_interval(diff, folds=5, confidence=0.95)
    se = math.sqrt(np.var(diff, ddof=1) * (1 / 5 + 1 / 4))  # n_test/n_train = 1/(k-1) for k-fold
    t = stats.t.ppf(0.975, df=4)
    assert (mean, low, high) == pytest.approx((0.02, 0.02 - t * se, 0.02 + t * se))
    assert p == pytest.approx(2 * stats.t.sf(0.02 / se, df=4))
    naive = stats.ttest_rel(diff, np.zeros(5))  # the uncorrected paired t-test is more confident
    assert naive.pvalue < p


def test_identical_scores_are_a_zero_width_tie_and_losses_count_lower_as_better():
    same = compare("roc_auc", [0.9, 0.8, 0.95], [0.9, 0.8, 0.95], "twin", folds=3, confidence=0.95)
    assert (same.gain, same.ci_low, same.ci_high, same.p_value) == (0.0, 0.0, 0.0, 1.0) and is_tied(same)
    better_loss = compare("log_loss", [0.1, 0.2, 0.15], [0.3, 0.4, 0.36], "worse", folds=3, confidence=0.95)
    assert better_loss.gain == pytest.approx(0.2033, abs=1e-4) and better_loss.ci_low > 0


# --- a clearly better model, identical twins, a model no better than chance --------------------------------

def test_a_clearly_better_model_leads_credibly_and_replaces_the_champion(separable, tmp_path):
    results = tmp_path / "results"
    stump = "  - model: random_forest\n    name: stump\n    params: {n_estimators: 1, max_depth: 1}\n"
    first = run_steps(spec_from_text(spec_for("clear", separable, stump)), results, "first")
    assert board_of(first).decision.promoted
    both = stump + "  - model: logistic_regression\n"
    board = board_of(run_steps(spec_from_text(spec_for("clear", separable, both)), results, "second"))
    stump_row = next(r for r in board.ranked if r.name == "stump")
    assert board.leader == board.winner == "logistic_regression"
    assert stump_row.vs_leader.ci_high < 0 and stump_row.verdict.startswith("worse, p = ")
    decision = board.decision
    assert decision.promoted and decision.vs_champion.ci_low > 0
    assert decision.reason.startswith("logistic_regression beats the champion stump (run first) credibly")


def test_identical_models_are_tied_and_an_equal_champion_is_never_replaced(separable, tmp_path):
    results = tmp_path / "results"
    twins = "  - model: logistic_regression\n  - model: logistic_regression\n    name: logreg_twin\n"
    spec = spec_from_text(spec_for("twins", separable, twins))
    board = board_of(run_steps(spec, results, "first"))
    twin = next(r for r in board.ranked if r.name != board.leader)
    assert (twin.vs_leader.gain, twin.vs_leader.ci_low, twin.vs_leader.ci_high) == (0.0, 0.0, 0.0)
    assert twin.verdict == "tied with the leader (p = 1)"
    assert board.winner == "logistic_regression"  # same complexity: the name decides
    again = board_of(run_steps(spec, results, "again")).decision
    assert not again.promoted and again.vs_champion.gain == 0.0
    assert "does not beat the champion logistic_regression (run first) credibly" in again.reason
    assert again.reason.endswith("champion kept")


def test_a_model_no_better_than_chance_is_flagged_and_never_promoted(tmp_path):
    rng = np.random.default_rng(0)
    noise = write_data(tmp_path / "noise", rng.normal(size=(200, 5)), rng.integers(0, 2, size=200))
    folder = run_steps(spec_from_text(spec_for("noise", noise, "  - model: logistic_regression\n")),
                       tmp_path / "results", "n")
    board = board_of(folder)
    row = board.ranked[0]
    assert board.baseline is not None and board.baseline.cv["roc_auc"].mean == 0.5
    assert row.vs_baseline.ci_low <= 0 and not row.eligible
    assert row.ineligible_reasons[-1].startswith("not clearly better than the baseline: gain ")
    assert board.winner is None and not board.decision.promoted
    table = leaderboard_table(board)
    assert "chance baseline (DummyClassifier, prior); never promoted" in table
    assert "not clearly better than the baseline" in table


# --- the simplicity rule ---------------------------------------------------------------------------------------

def test_the_simplest_model_tied_with_the_leader_wins_with_the_reason(separable, tmp_path):
    models = "  - model: svm\n  - model: logistic_regression\n"
    board = board_of(run_steps(spec_from_text(spec_for("simple", separable, models)), tmp_path / "r", "s", "select"))
    svm, logreg = (next(r for r in board.ranked if r.name == n) for n in ("svm", "logistic_regression"))
    # the SVM in the lead (as it is on some draws of folds), with the folds both really scored
    svm = svm.model_copy(update={"rank": 1, "vs_leader": None})
    behind = compare("roc_auc", logreg.fold_scores["roc_auc"], svm.fold_scores["roc_auc"], "svm", 5, 0.95)
    logreg = logreg.model_copy(update={"rank": 2, "vs_leader": behind})
    assert is_tied(behind)
    winner, reason = choose_winner([svm, logreg])
    assert winner is logreg
    assert reason.startswith(f"logistic_regression is tied with the leader svm (gain {behind.interval()}, p = ")
    assert "simpler by the rule (catalog complexity 10 vs 20, then name)" in reason
    clearly_behind = logreg.model_copy(update={"vs_leader": behind.model_copy(update={"ci_high": -0.001})})
    assert choose_winner([svm, clearly_behind])[0] is svm
    assert isinstance(svm, RankedRow)


# --- the threshold target ------------------------------------------------------------------------------------

def test_a_model_missing_the_target_recall_out_of_fold_is_ineligible_and_the_closest_is_named(tmp_path):
    models = "  - model: random_forest\n    name: stump\n    params: {n_estimators: 1, max_depth: 1}\n" \
             "  - model: logistic_regression\n"
    spec = spec_from_text(spec_for("strict", Path("unused"), models).replace(
        "{source: 'unused', target: label, positive_class: 'yes'}", "{source: 'sklearn:breast_cancer', "
        "positive_class: malignant}") + "selection: {threshold: {target_recall: 0.995}}\n")
    board = board_of(run_steps(spec, tmp_path / "results", "t", "select"))
    for row in board.ranked:
        recall = row.cv["recall"].mean
        missed = [r for r in row.ineligible_reasons if "misses target_recall 0.995" in r]
        assert bool(missed) == (recall < 0.995) and row.threshold.target_met == (recall >= 0.995)
        assert row.threshold.cv_precision is not None and row.threshold.cv_precision.std >= 0
    stump = next(r for r in board.ranked if r.name == "stump")
    assert stump.cv["recall"].mean < 0.995  # one split cannot find 99.5% of the malignant tumours
    if board.winner is None:
        closest = max(board.ranked, key=lambda r: r.cv["recall"].mean)
        assert f"Closest to target_recall 0.995: {closest.name}" in board.decision.reason
    else:
        assert board.winner_row.cv["recall"].mean >= 0.995


def test_a_challenger_inside_the_noise_does_not_replace_a_different_champion(tmp_path):
    results = tmp_path / "results"
    svm = spec_from_text(spec_for("noisy", Path("x"), "  - model: svm\n").replace(
        "{source: 'x', target: label, positive_class: 'yes'}", "{source: 'sklearn:breast_cancer', "
        "positive_class: malignant}"))
    logreg = svm.model_copy(update={"models": spec_from_text(
        spec_for("noisy", Path("x"), "  - model: logistic_regression\n")).models})
    assert board_of(run_steps(svm, results, "svm")).decision.promoted
    decision = board_of(run_steps(logreg, results, "logreg")).decision
    gain = decision.vs_champion
    assert gain.against == "svm (run svm)" and gain.ci_low <= 0.0 < gain.ci_high
    assert not decision.promoted and decision.reason.endswith("champion kept")
    assert decision.challenger_score != decision.champion_score  # the means differ, the difference is noise
