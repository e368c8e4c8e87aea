""""LLMs vs conventional recommenders": per task and scenario, the best LLM row beside the best
conventional baseline and the best LLM-for-RS baseline (a conventional model fed frozen
item-text vectors), and the gaps. Written beside the leaderboards when the results hold
baseline rows (`recbench baseline`).

A comparison only means something on the same samples: each pick carries its data
fingerprint and sample count, and a scenario whose picks differ in either is flagged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from ..tasks import DEFAULT_TASK
from .tables import BENCHMARK_SCENARIOS, LOWER_IS_BETTER, SCENARIO_TITLES, Report, _finite

BASELINE_PIPELINE = "baseline"  # the pipeline of `recbench baseline` results
KINDS = ("llm", "baseline", "llm_for_rs")
KIND_TITLES = {"llm": "Best LLM", "baseline": "Best conventional", "llm_for_rs": "Best LLM-for-RS"}


@dataclass
class Pick:
    """The best row of one kind in one scenario."""

    label: str
    value: float
    pipeline: str
    scheme: str
    n: Optional[float] = None
    fingerprint: Optional[str] = None
    file: Optional[str] = None

    @property
    def where(self) -> str:
        return f"{self.pipeline}, {self.scheme}"


@dataclass
class VersusRow:
    scenario: str
    picks: Dict[str, Optional[Pick]]
    gap: Optional[float] = None  # best LLM vs best conventional (positive: the LLM is better)
    gap_llm_for_rs: Optional[float] = None  # best LLM vs best LLM-for-RS
    flags: List[str] = field(default_factory=list)


@dataclass
class Versus:
    task: str
    metric: str
    rows: List[VersusRow]

    @property
    def key(self) -> str:
        return f"versus-{self.task}"


def _kind(rec: Dict[str, Any]) -> str:
    if rec.get("pipeline") != BASELINE_PIPELINE:
        return "llm"
    return "llm_for_rs" if rec.get("item_embeddings") else "baseline"


def _newest(records: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """One record per (row, pipeline, scheme, task, scenario): the newest."""
    best: Dict[tuple, Dict[str, Any]] = {}
    for r in records:
        key = (r["label"], r["pipeline"], r["scheme"], r.get("task") or "ctr", r["scenario"])
        if key not in best or (r.get("created") or "", r["file"]) > (best[key].get("created") or "", best[key]["file"]):
            best[key] = r
    return list(best.values())


def _gap(a: Optional[Pick], b: Optional[Pick], lower: bool) -> Optional[float]:
    if a is None or b is None:
        return None
    return (b.value - a.value) if lower else (a.value - b.value)


def build_versus(report: Report, metric: Optional[str] = None) -> List[Versus]:
    """One comparison per task that has baseline rows (none when no baseline was run)."""
    metric = metric or report.metric
    lower = metric in LOWER_IS_BETTER
    recs = [r for r in _newest(report.records) if _finite(r.get(metric))]
    out: List[Versus] = []
    for task in sorted({r.get("task") or "ctr" for r in recs}):
        mine = [r for r in recs if (r.get("task") or "ctr") == task]
        if not any(_kind(r) != "llm" for r in mine):
            continue
        scenarios = sorted({r["scenario"] for r in mine},
                           key=lambda s: (BENCHMARK_SCENARIOS.index(s) if s in BENCHMARK_SCENARIOS
                                          else len(BENCHMARK_SCENARIOS), s))
        rows = []
        for scen in scenarios:
            picks: Dict[str, Optional[Pick]] = {}
            for kind in KINDS:
                cands = [r for r in mine if r["scenario"] == scen and _kind(r) == kind]
                if not cands:
                    picks[kind] = None
                    continue
                r = (min if lower else max)(cands, key=lambda x: (float(x[metric]), x["label"]))
                picks[kind] = Pick(label=r["label"], value=float(r[metric]), pipeline=r["pipeline"],
                                   scheme=r["scheme"], n=r.get("n") if _finite(r.get("n")) else None,
                                   fingerprint=r.get("data_fingerprint"), file=r.get("file"))
            row = VersusRow(scen, picks, gap=_gap(picks["llm"], picks["baseline"], lower),
                            gap_llm_for_rs=_gap(picks["llm"], picks["llm_for_rs"], lower))
            shown = [p for p in picks.values() if p is not None]
            prints = {p.fingerprint for p in shown if p.fingerprint}
            ns = {int(p.n) for p in shown if p.n is not None}
            if len(prints) > 1:
                row.flags.append("different data fingerprints: not the same test samples")
            if len(ns) > 1:
                row.flags.append("different sample counts (" + " vs ".join(str(n) for n in sorted(ns))
                                 + "): rerun without --limit or with the same one")
            rows.append(row)
        out.append(Versus(task=task, metric=metric, rows=rows))
    return out


# -- rendering --------------------------------------------------------------------------------


def _num(v: Optional[float]) -> str:
    return "—" if v is None or not _finite(v) else f"{v:.4f}"


def _signed(v: Optional[float]) -> str:
    return "—" if v is None or not _finite(v) else f"{v:+.4f}"


def render_versus_markdown(versus: Sequence[Versus]) -> str:
    from .formats import _md_escape

    lines: List[str] = []
    for v in versus:
        lines += [f"## LLMs vs conventional recommenders (`{v.task}`, {v.metric})", ""]
        head = ["Scenario"]
        for kind in KINDS:
            head += [KIND_TITLES[kind], v.metric]
        head += ["Gap (LLM − conventional)", "Gap (LLM − LLM-for-RS)", "Flags"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "|".join([":---"] + [":---", "---:"] * len(KINDS) + ["---:", "---:", ":---"]) + "|")
        for row in v.rows:
            cells = [_md_escape(SCENARIO_TITLES.get(row.scenario, row.scenario))]
            for kind in KINDS:
                p = row.picks[kind]
                cells += ([_md_escape(p.label) + (f" ({_md_escape(p.where)})" if kind == "llm" else ""), _num(p.value)]
                          if p else ["—", "—"])
            cells += [_signed(row.gap), _signed(row.gap_llm_for_rs),
                      _md_escape("⚑ " + "; ".join(row.flags)) if row.flags else ""]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", f"Gaps: best LLM minus best baseline in {v.metric}"
                  + (" (lower is better, so the sign is flipped)" if v.metric in LOWER_IS_BETTER else "")
                  + "; positive means the LLM wins. Conventional and LLM-for-RS rows are baselines "
                  "(`recbench baseline`); LLM-for-RS = a conventional model fed frozen item-text vectors "
                  "of an embedding model.", ""]
    return "\n".join(lines)


def versus_frame(versus: Sequence[Versus]):
    import pandas as pd

    data = []
    for v in versus:
        for row in v.rows:
            rec: Dict[str, Any] = {"task": v.task, "metric": v.metric, "scenario": row.scenario}
            for kind in KINDS:
                p = row.picks[kind]
                rec[f"{kind}_model"] = p.label if p else None
                rec[f"{kind}_where"] = p.where if p else None
                rec[kind] = p.value if p else math.nan
                rec[f"{kind}_n"] = p.n if p else math.nan
            rec["gap"] = row.gap if row.gap is not None else math.nan
            rec["gap_llm_for_rs"] = row.gap_llm_for_rs if row.gap_llm_for_rs is not None else math.nan
            rec["flags"] = "; ".join(row.flags)
            data.append(rec)
    return pd.DataFrame(data)


def versus_figure(v: Versus):
    """Grouped bars per scenario: best LLM, best conventional, best LLM-for-RS."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    colors = {"llm": "#1a73e8", "baseline": "#e37400", "llm_for_rs": "#188038"}
    fig = Figure(figsize=(max(6.0, 2.0 + 1.8 * len(v.rows)), 4.0), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(v.rows))
    width = 0.26
    values = []
    for k, kind in enumerate(KINDS):
        vals = [row.picks[kind].value if row.picks[kind] else np.nan for row in v.rows]
        values += [a for a in vals if np.isfinite(a)]
        bars = ax.bar(x + (k - 1) * width, vals, width, color=colors[kind], label=KIND_TITLES[kind],
                      edgecolor="#333333", linewidth=0.4)
        for bar, row in zip(bars, v.rows):
            p = row.picks[kind]
            if p is not None:
                ax.text(bar.get_x() + bar.get_width() / 2, p.value, f"{p.value:.3f}\n{p.label}", ha="center",
                        va="bottom", fontsize=5.5, rotation=0)
    ax.set_xticks(x)
    ax.set_xticklabels([SCENARIO_TITLES.get(r.scenario, r.scenario) + (" ⚑" if r.flags else "") for r in v.rows],
                       fontsize=8)
    if values:
        lo, hi = min(values), max(values)
        span = max(hi - lo, 0.05)
        ax.set_ylim(max(0.0, lo - 0.3 * span), hi + 0.35 * span)
    ax.set_ylabel(v.metric + (" (lower is better)" if v.metric in LOWER_IS_BETTER else ""))
    ax.set_title(f"LLMs vs conventional recommenders ({v.task}): {v.metric}", fontsize=10)
    ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def write_versus(report: Report, out: Path, formats: Sequence[str]) -> List[Path]:
    """versus.<metric>.md / .csv and versus-<task>.<metric>.png / .svg (when there are baselines)."""
    from .formats import _atomic_savefig, _atomic_write, _safe_name

    versus = build_versus(report)
    if not versus:
        return []
    m = _safe_name(report.metric)
    pre = "" if report.task == DEFAULT_TASK else f"{_safe_name(report.task)}-"  # one report per task
    written: List[Path] = []
    if "md" in formats:
        written.append(_atomic_write(out / f"{pre}versus.{m}.md", render_versus_markdown(versus)))
    if "csv" in formats:
        written.append(_atomic_write(out / f"{pre}versus.{m}.csv", versus_frame(versus).to_csv(index=False,
                                                                                               float_format="%.6g")))
    figs = [f for f in formats if f in ("png", "svg")]
    if figs:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            figs = []
    for v in versus:
        if not figs:
            break
        fig = versus_figure(v)
        for f in figs:
            written.append(_atomic_savefig(fig, out / f"{v.key}.{m}.{f}", f))
    return written
