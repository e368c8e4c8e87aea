"""Matplotlib figures of a leaderboard: a per-scenario heatmap and an Overall bar chart."""

from __future__ import annotations

from typing import List, Optional, Tuple

from .tables import BENCHMARK_SCENARIOS, LOWER_IS_BETTER, RANDOM_EXPECTED, SCENARIO_TITLES, Row, Table, _finite


def _bar(row: Row) -> Optional[Tuple[float, str]]:
    """(value, label) of a row's Overall bar; None when there is nothing to draw.

    A run outside the ten benchmark scenarios (the demo) has no Overall; it is still drawn,
    as the mean of the scenarios it has, hatched as incomplete and named by them, so that a
    new user's first run is always on the chart."""
    label = row.label + ("" if row.complete else " †") + (" ⚑" if row.flags else "")
    if _finite(row.overall):
        return row.overall, label
    if row.source != "run":
        return None
    own = [s for s in row.cells if s not in BENCHMARK_SCENARIOS and _finite(row.cells[s].value)]
    if not own:
        return None
    value = sum(row.cells[s].value for s in own) / len(own)
    return value, f"{row.label} ({', '.join(SCENARIO_TITLES.get(s, s) for s in own)}) †" + (" ⚑" if row.flags else "")


def _figure_rows(table: Table) -> List[Row]:
    return [r for r in table.rows if r.source != "random"]


def _heatmap(table: Table):
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    rows = _figure_rows(table)
    cols = table.columns
    data = np.full((len(rows), len(cols)), np.nan)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            if c in r.cells:
                data[i, j] = r.cells[c].value
    finite = data[np.isfinite(data)]
    if table.metric in RANDOM_EXPECTED and finite.size:
        d = max(0.02, float(np.max(np.abs(finite - 0.5))))
        norm, cmap = Normalize(0.5 - d, 0.5 + d), "RdYlGn"
    else:
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if hi - lo < 1e-9:
            lo, hi = lo - 0.01, hi + 0.01
        norm, cmap = Normalize(lo, hi), ("RdYlGn_r" if table.metric in LOWER_IS_BETTER else "RdYlGn")
    fig = Figure(figsize=(1.6 + 0.78 * len(cols), 1.3 + 0.36 * len(rows)), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_facecolor("#eeeeee")
    masked = np.ma.masked_invalid(data)
    im = ax.imshow(masked, aspect="auto", cmap=cmap, norm=norm, interpolation="nearest")
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels([SCENARIO_TITLES.get(c, c) for c in cols], rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r.label + ("" if r.complete else " †") + (" ⚑" if r.flags else "")
                        for r in rows], fontsize=8)
    if data.size <= 600:
        cm = im.get_cmap()
        for i in range(data.shape[0]):
            for j in range(data.shape[1]):
                v = data[i, j]
                color = "#333333"
                if np.isfinite(v):
                    r_, g_, b_, _ = cm(norm(v))
                    if 0.299 * r_ + 0.587 * g_ + 0.114 * b_ < 0.5:
                        color = "white"  # dark cell
                ax.text(j, i, "–" if not np.isfinite(v) else f"{v:.3f}", ha="center", va="center",
                        fontsize=6.5, color=color)
    ax.set_title(f"{table.title}: {table.metric}", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02)
    fig.tight_layout()
    return fig


def _overall_bars(table: Table):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    drawn = [(r, _bar(r)) for r in _figure_rows(table)]
    drawn = [(r, bar) for r, bar in drawn if bar is not None]
    fig = Figure(figsize=(7.5, 1.2 + 0.32 * max(1, len(drawn))), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    drawn = list(reversed(drawn))  # the table's order from the top: your runs, then by Overall
    rows = [r for r, _ in drawn]
    values = [bar[0] for _, bar in drawn]
    colors = ["#9aa0a6" if r.source == "published" else "#1a73e8" for r in rows]
    bars = ax.barh(range(len(rows)), values, color=colors, edgecolor="#333333", linewidth=0.4)
    for bar, r in zip(bars, rows):
        if not r.complete:
            bar.set_hatch("///")
            bar.set_alpha(0.7)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([bar[1] for _, bar in drawn], fontsize=8)
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:.4f}", va="center", fontsize=7)
    handles = [Patch(color="#1a73e8", label="your runs"), Patch(color="#9aa0a6", label="published")]
    if any(not r.complete for r in rows):
        handles.append(Patch(facecolor="white", edgecolor="#333333", hatch="///", label="incomplete †"))
    # the random row's value: 0.5 for auc/gauc; for seqrec's ranking metrics when the table has one
    rv = RANDOM_EXPECTED.get(table.metric, next((r.overall for r in table.rows if r.source == "random"), None))
    if rv is not None:
        ax.axvline(rv, color="#d93025", linestyle="--", linewidth=1)
        handles.append(Patch(color="#d93025", label=f"random ({rv:.4g})"))
    if values:
        lo, hi = min(values + [rv if rv is not None else min(values)]), max(values)
        span = max(hi - lo, 0.02)
        ax.set_xlim(max(0.0, lo - 0.15 * span) if lo >= 0 else lo - 0.15 * span, hi + 0.25 * span)
    ax.set_xlabel(f"Overall {table.metric}" + (" (lower is better)" if table.metric in LOWER_IS_BETTER else ""))
    ax.set_title(f"{table.title}: Overall", fontsize=10)
    ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1 - 1.2 / fig.get_figheight() * 0.1),
              ncol=len(handles), frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


# -- list-wise position bias --------------------------------------------------------------------
def position_bias_entries(records) -> List[tuple]:
    """(label, position_bias block) for every results record whose meta holds one
    (`meta.ranking.position_bias`, written by the list-wise scheme; see
    recbench/schemes/listwise.py: position_bias_block). Records are the reporter's rows
    (dicts with `path`, `label`, `scenario`, `task`); files that cannot be read are skipped."""
    import json
    from pathlib import Path

    out = []
    for rec in records:
        try:
            meta = json.loads(Path(rec["path"]).read_text(encoding="utf-8")).get("meta") or {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        block = (meta.get("ranking") or {}).get("position_bias") if isinstance(meta, dict) else None
        if isinstance(block, dict) and isinstance(block.get("all"), dict):
            label = f"{rec.get('label', '?')} · {rec.get('scenario', '?')}"
            if rec.get("task"):
                label += f" ({rec['task']})"
            out.append((label, block))
    return out


def position_bias_figure(entries):
    """Mean rank (1 = first) by the position a candidate was shown at, over valid answers.

    Left: the group's first candidate, i.e. the target for seqrec (the target's rank by its
    shown position; flat means the model finds it wherever it is shown). Right: every shown
    candidate (the model's own position bias; an unbiased model sits on the dashed line,
    (n+1)/2). One line per run."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    panels = (("first_candidate", "first candidate (seqrec: the target)"), ("all", "all shown candidates"))
    longest = 1
    for col, (key, title) in enumerate(panels):
        ax = fig.add_subplot(1, 2, col + 1)
        for label, block in entries:
            ranks = (block.get(key) or {}).get("mean_rank") or []
            xs = [s + 1 for s, v in enumerate(ranks) if _finite(v)]
            ys = [v for v in ranks if _finite(v)]
            if xs:
                longest = max(longest, max(xs))
                ax.plot(xs, ys, marker="o", markersize=3, linewidth=1.2, label=label)
        if key == "all":
            ax.axhline((longest + 1) / 2, color="#d93025", linestyle="--", linewidth=1,
                       label="no position bias ((n+1)/2)")
        ax.set_xlabel("shown position (1 = shown first)")
        ax.set_ylabel("mean rank given (1 = ranked first)")
        ax.set_title(title, fontsize=10)
        ax.invert_yaxis()  # better ranks at the top
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best")
        if not entries:
            ax.text(0.5, 0.5, "no valid answers", transform=ax.transAxes, ha="center")
    fig.suptitle("List-wise ranking by shown position (valid answers only)", fontsize=11)
    fig.tight_layout()
    return fig
