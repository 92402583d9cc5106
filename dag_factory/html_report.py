"""A run's HTML report: the leaderboard, the decision and every model's plots side by side.

One self-contained file (inline CSS, PNGs embedded as base64, no script, nothing fetched), so
it opens the same from the run folder, the champion's folder, an e-mail or an artifact store.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path
from typing import Any

from dag_factory.files import write_text
from dag_factory.storage import StoragePath, copy_file
from dag_factory.spec import METRICS
from dag_factory.steps.card import champion_plot_name, describe_gates
from dag_factory.steps.plots import PLOT_KINDS, PLOT_TITLES

REPORT_FILE = "report.html"

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1f2933;background:#fff}
h1{font-size:1.5em;margin-bottom:4px} h2{font-size:1.2em;margin-top:32px;border-bottom:1px solid #d9e2ec}
.facts{color:#52606d;margin:0 0 12px} .decision{padding:10px 14px;border-radius:6px;margin:12px 0}
.promoted{background:#e3f9e5;border:1px solid #57ae5b} .kept{background:#fffbea;border:1px solid #f0b429}
.wrap{overflow-x:auto} table{border-collapse:collapse;font-size:0.85em}
th,td{border:1px solid #d9e2ec;padding:4px 8px;text-align:right;white-space:nowrap}
th{background:#f0f4f8} td.name,th.name{text-align:left} tr.winner td{background:#e3f9e5;font-weight:600}
tr.ineligible td{color:#9aa5b1} td.note{text-align:left;white-space:normal;max-width:28em}
.std{color:#7b8794;font-size:0.85em} .plots{display:flex;flex-wrap:wrap;gap:12px}
figure{margin:0;border:1px solid #d9e2ec;border-radius:6px;padding:6px} figure img{max-width:460px;display:block}
figcaption{font-size:0.85em;color:#52606d;text-align:center}
"""


def write_report(board: dict[str, Any], run_dir: StoragePath) -> StoragePath:
    """Render the leaderboard ``board`` (a run's metrics.json) into ``run_dir/report.html``."""
    return write_text(run_dir / REPORT_FILE, render_report(board, run_dir / "models"))


def install_champion_report(staging: Path, board: dict[str, Any], trained: StoragePath, card: dict[str, Any]) -> None:
    """Put the report and the winner's plots (from its folder ``trained``) into a champion version being assembled.

    The promotion decision is not in the run's leaderboard yet, so the card's reason stands in.
    """
    decided = {**board, "decision": {"promoted": True, "reason": card["reason"]}}
    write_text(staging / REPORT_FILE, render_report(decided, trained.parent))
    winner = next(r for r in board["leaderboard"] if r["name"] == board["winner"])
    for kind, relative in winner.get("plots", {}).items():
        copy_file(trained / relative, staging / champion_plot_name(kind))


def render_report(board: dict[str, Any], models_dir: StoragePath) -> str:
    """The report as one HTML page; the plots are read from each model's folder in ``models_dir``."""
    title = f"{board['experiment']}: run {board['run_id']}"
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(board['experiment'])}</h1>",
        f'<p class="facts">{escape(_facts(board))}</p>',
        _decision(board),
        "<h2>Leaderboard</h2>", _leaderboard(board),
        _thresholds(board),
        "<h2>Plots</h2>", _plots(board, models_dir),
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p)


def _facts(board: dict[str, Any]) -> str:
    protocol = board["cv_protocol"]
    classes = board.get("classes") or []
    positive = f"; positive class {classes[-1]}" if len(classes) == 2 else ""
    return (f"Run {board['run_id']}. Ranked on CV {board['metric']} (mean of stratified {protocol['folds']}-fold x "
            f"{protocol['repeats']} on the training split{positive}). Rule: {board['ranking_rule']}. "
            f"Gates: {describe_gates(board['require'])}. The held-out test split is reported, never used to choose.")


def _decision(board: dict[str, Any]) -> str:
    decision = board.get("decision")
    if not decision:
        return '<div class="decision kept">No promotion decision was recorded (the promote step did not finish).</div>'
    verdict = "PROMOTED" if decision["promoted"] else "NOT PROMOTED"
    css = "promoted" if decision["promoted"] else "kept"
    winner = f"Winner: <b>{escape(board['winner'])}</b>. " if board.get("winner") else ""
    return f'<div class="decision {css}">{winner}<b>{verdict}</b>: {escape(decision["reason"])}</div>'


def _leaderboard(board: dict[str, Any]) -> str:
    metric = board["metric"]
    shown = (metric, *[m for m in METRICS if m != metric])
    header = ["#", "model", *[f"CV {m}" for m in shown], f"test {metric}", "threshold", "fit s", "status"]
    rows = ["<tr>" + "".join(f'<th{_name_class(i)}>{escape(h)}</th>' for i, h in enumerate(header)) + "</tr>"]
    for row in board["leaderboard"]:
        rows.append(_leaderboard_row(row, shown, metric, board.get("winner")))
    return f'<div class="wrap"><table>{"".join(rows)}</table></div>'


def _leaderboard_row(row: dict[str, Any], shown: tuple[str, ...], metric: str, winner: str | None) -> str:
    if row["status"] != "ok":
        note = f"{row['status']}: {row.get('error') or ''}"
        return ('<tr class="ineligible"><td>-</td>' + _name_cell(row["name"]) + "<td></td>" * (len(shown) + 3)
                + f'<td class="note">{escape(note)}</td></tr>')
    css = "winner" if row["name"] == winner else ("" if row["eligible"] else "ineligible")
    status = "eligible" if row["eligible"] else "ineligible: " + "; ".join(row["ineligible_reasons"])
    if row.get("chosen_params"):
        status += f"; search chose {row['chosen_params']}"
    threshold = row["threshold"]["value"]
    cells = [
        f"<td>{row['rank']}</td>", _name_cell(row["name"]),
        *[f"<td>{row['cv'][m]['mean']:.4f} <span class=\"std\">± {row['cv'][m]['std']:.4f}</span></td>" for m in shown],
        f"<td>{row['test'][metric]:.4f}</td>",
        f"<td>{'argmax' if threshold is None else f'{threshold:.4f}'}</td>",
        f"<td>{row['cv']['fit_seconds']['mean']:.2f}</td>",
        f'<td class="note">{escape(status)}</td>',
    ]
    return f'<tr class="{css}">' + "".join(cells) + "</tr>"


def _name_cell(name: str) -> str:
    return f'<td class="name">{escape(name)}</td>'


def _name_class(index: int) -> str:
    return ' class="name"' if index == 1 else ""


def _thresholds(board: dict[str, Any]) -> str:
    """What a target sensitivity costs each model, when the spec sets one."""
    if not board.get("threshold"):
        return ""
    header = ["model", "threshold", "CV recall", "CV specificity", "specificity at 0.5", "cost", "test recall",
              "test specificity"]
    rows = ["<tr>" + "".join(f'<th{_name_class(i + 1)}>{escape(h)}</th>' for i, h in enumerate(header)) + "</tr>"]
    for row in board["leaderboard"]:
        if row["status"] != "ok":
            continue
        t = row["threshold"]
        rows.append("<tr>" + _name_cell(row["name"]) + "".join(f"<td>{v}</td>" for v in (
            f"{t['value']:.4f}", _mean_std(t["cv_recall"]), _mean_std(t["cv_specificity"]),
            _mean_std(t["at_default"]["cv_specificity"]), f"{t['specificity_cost']:+.4f}",
            f"{t['test_recall']:.4f}", f"{t['test_specificity']:.4f}")) + "</tr>")
    target = board["threshold"]["target_recall"]
    return (f"<h2>Decision threshold (target recall {target})</h2>"
            "<p class=\"facts\">Each model's threshold is the highest whose out-of-fold recall reaches the target. "
            "CV figures are cross-fitted: each fold is scored at a threshold chosen on the other folds.</p>"
            f'<div class="wrap"><table>{"".join(rows)}</table></div>')


def _mean_std(value: dict[str, float]) -> str:
    return f"{value['mean']:.4f} ± {value['std']:.4f}"


def _plots(board: dict[str, Any], models_dir: StoragePath) -> str:
    """One row per kind of plot, the models side by side in leaderboard order."""
    trained = [r for r in board["leaderboard"] if r["status"] == "ok"]
    sections = []
    for kind in PLOT_KINDS:
        figures = [_figure(row, kind, models_dir) for row in trained if kind in row.get("plots", {})]
        if figures:
            sections.append(f"<h3>{escape(PLOT_TITLES[kind])}</h3><div class=\"plots\">{''.join(figures)}</div>")
    return "\n".join(sections) or "<p>No plots were drawn.</p>"


def _figure(row: dict[str, Any], kind: str, models_dir: StoragePath) -> str:
    path = models_dir / row["name"] / row["plots"][kind]
    if not path.exists():
        return f"<figure><figcaption>{escape(row['name'])}: {escape(str(path))} is missing</figcaption></figure>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    alt = f"{PLOT_TITLES[kind]} of {row['name']}"
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{escape(alt)}">'
            f"<figcaption>#{row['rank']} {escape(row['name'])}</figcaption></figure>")
