"""Human-readable views of a run's results: the leaderboard as a text table."""

from __future__ import annotations

from typing import Any

COLUMNS = ("roc_auc", "accuracy", "recall", "specificity", "f1")


def leaderboard_table(board: dict[str, Any]) -> str:
    """The leaderboard as an aligned text table (CV mean +/- std), with the promotion decision.

    With ``selection.threshold`` the threshold-dependent columns are at each model's chosen threshold.
    """
    metric = board["metric"]
    shown = (metric, *[c for c in COLUMNS if c != metric])
    thresholds = bool(board.get("threshold"))
    header = ["#", "model", *[f"cv {m}" for m in shown], f"test {metric}", *(["threshold"] * thresholds), "fit s",
              "status"]
    rows = [header]
    for row in board["leaderboard"]:
        if row["status"] != "ok":
            rows.append(["-", row["name"], *[""] * (len(header) - 3), f"{row['status']}: {row.get('error') or ''}"[:60]])
            continue
        cells = [f"{row['cv'][m]['mean']:.4f} ± {row['cv'][m]['std']:.4f}" for m in shown]
        status = "eligible" if row["eligible"] else "ineligible: " + "; ".join(row["ineligible_reasons"])
        threshold = [f"{row['threshold']['value']:.4f}"] if thresholds else []
        rows.append([str(row["rank"]), row["name"], *cells, f"{row['test'][metric]:.4f}", *threshold,
                     f"{row['cv']['fit_seconds']['mean']:.2f}", status])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    decision = board.get("decision")
    if decision:
        lines.append("")
        lines.append(("PROMOTED: " if decision.get("promoted") else "NOT PROMOTED: ") + decision["reason"])
    return "\n".join(lines)
