"""The efficiency table and the quality-vs-throughput figure (the paper's latency table).

Rows are the runs' models (per task, pipeline and scheme); per scenario the table shows the
quality metric beside pairs/s and ms per pair from each results file's meta.efficiency. The
figure puts every model at (mean pairs/s, mean quality) over the scenarios it has both for,
and draws the Pareto front: the models no other model beats on both axes.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Sequence, Tuple

import pandas as pd

from .tables import LOWER_IS_BETTER


def efficiency_frame(records: Sequence[Dict[str, Any]], metric: str) -> pd.DataFrame:
    """One row per (task, pipeline, scheme, model, scenario) with the metric and throughput."""
    rows = []
    for r in records:
        if r.get("pairs_per_s") is None or r.get(metric) is None:
            continue
        value = r.get(metric)
        if isinstance(value, float) and math.isnan(value):
            continue
        rows.append({"task": r.get("task", "ctr"), "pipeline": r.get("pipeline"), "scheme": r.get("scheme"),
                     "model": r.get("label"), "scenario": r.get("scenario"), metric: float(value),
                     "pairs_per_s": float(r["pairs_per_s"]), "ms_per_pair": r.get("ms_per_pair")})
    cols = ["task", "pipeline", "scheme", "model", "scenario", metric, "pairs_per_s", "ms_per_pair"]
    df = pd.DataFrame(rows, columns=cols)
    return df.sort_values(["task", "pipeline", "scheme", "model", "scenario"]).reset_index(drop=True)


def model_means(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per model: mean quality, mean pairs/s and the number of scenarios, with a Pareto flag."""
    if df.empty:
        return pd.DataFrame(columns=["task", "model", metric, "pairs_per_s", "scenarios", "pareto"])
    g = df.groupby(["task", "pipeline", "scheme", "model"], as_index=False).agg(
        **{metric: (metric, "mean"), "pairs_per_s": ("pairs_per_s", "mean"), "scenarios": ("scenario", "count")})
    g["pareto"] = False
    for _task, part in g.groupby("task"):
        g.loc[part.index, "pareto"] = pareto_front(list(zip(part["pairs_per_s"], part[metric])),
                                                   lower_is_better=metric in LOWER_IS_BETTER)
    return g


def pareto_front(points: List[Tuple[float, float]], lower_is_better: bool = False) -> List[bool]:
    """For each (throughput, quality) point: whether no other point is at least as good on
    both and strictly better on one."""
    sign = -1.0 if lower_is_better else 1.0
    out = []
    for i, (x, y) in enumerate(points):
        dominated = any(
            (x2 >= x and sign * y2 >= sign * y) and (x2 > x or sign * y2 > sign * y)
            for j, (x2, y2) in enumerate(points) if j != i
        )
        out.append(not dominated)
    return out


def render_efficiency_markdown(df: pd.DataFrame, metric: str) -> str:
    if df.empty:
        return "# Efficiency\n\nNo results file holds throughput (meta.efficiency) for computed pairs yet.\n"
    from html import escape

    lines = ["# Efficiency", "", f"Quality ({metric}) beside throughput, per model and scenario. Pairs/s "
             "counts only pairs computed in that run (cached pairs are free).", "",
             f"| task | pipeline | scheme | model | scenario | {escape(metric)} | pairs/s | ms/pair |",
             "|---|---|---|---|---|---:|---:|---:|"]
    for r in df.to_dict("records"):
        names = " | ".join(escape(str(r[k])) for k in ("task", "pipeline", "scheme", "model", "scenario"))
        lines.append(f"| {names} | {_fmt(r[metric])} | {r['pairs_per_s']:.2f} | {_fmt(r['ms_per_pair'], 2)} |")
    return "\n".join(lines) + "\n"


def _fmt(v: Any, digits: int = 4) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{float(v):.{digits}f}"


def quality_vs_throughput_figure(means: pd.DataFrame, metric: str):
    """Scatter of mean quality against mean pairs/s (log scale), Pareto front joined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for task, part in means.groupby("task"):
        ax.scatter(part["pairs_per_s"], part[metric], label=f"{task}", alpha=0.8)
        for r in part.to_dict("records"):
            ax.annotate(str(r["model"]), (r["pairs_per_s"], r[metric]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        front = part[part["pareto"]].sort_values("pairs_per_s")
        if len(front) > 1:
            ax.plot(front["pairs_per_s"], front[metric], linestyle="--", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("pairs scored per second (log)")
    ax.set_ylabel(metric)
    ax.set_title("Quality vs throughput (dashed: Pareto front)")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig
