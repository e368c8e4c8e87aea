"""The list-wise scheme with synthetic user groups (target first) and the dummy / scripted
generators: shown order, parsing, the fill rule's fairness, Borda, cache, warnings, ctr."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import pytest

from recbench.cache import ScoreCache
from recbench.cli import main
from recbench.config import RunConfig
from recbench.errors import ConfigError
from recbench.models import ALIASES, resolve_model
from recbench.prompts import PromptBuilder, Template
from recbench.schemes import SchemeContext, get_scheme, resolve_scheme, schemes_for
from recbench.schemes.listwise import (
    ListwiseScheme,
    borda,
    candidate_ranks,
    full_ranking,
    identifiers,
    parse_ranking,
    shown_order,
)
from recbench.scorers import scorer_class
from recbench.scorers.base import TextGenerator
from recbench.scorers.dummy import DummyTextGenerator
from recbench.types import UserGroup

_CAND = re.compile(r"^\[([A-Za-z0-9]+)\] (.*)$", re.MULTILINE)


# -- doubles ----------------------------------------------------------------------------------
class Scripted(TextGenerator):
    """Answers with answer(prompt, shown ids, shown texts); counts what it generated."""

    backend = "scripted"

    def __init__(self, answer: Callable[[str, List[str], List[str]], str], fail_after: Optional[int] = None):
        self.answer = answer
        self.calls: List[str] = []
        self.fail_after = fail_after

    @classmethod
    def from_run(cls, spec, run):  # pragma: no cover - not made by the runner
        raise NotImplementedError

    def identity(self) -> Dict:
        return {"model": "scripted"}

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    @property
    def context_budget(self) -> int:
        return 100_000

    def generate(self, prompts, max_new_tokens, on_result=None):
        out = []
        for i, p in enumerate(prompts):
            if self.fail_after is not None and len(self.calls) >= self.fail_after:
                raise KeyboardInterrupt  # a kill in the middle of a chunk
            found = _CAND.findall(p)
            text = self.answer(p, [f[0] for f in found], [f[1] for f in found])
            self.calls.append(p)
            out.append(text)
            if on_result is not None:
                on_result(i, text)
        return out


def in_shown_order(prompt, ids, texts):
    return " > ".join(f"[{i}]" for i in ids)


def garbage(prompt, ids, texts):
    return "I would recommend the first one, it looks nice."


def make_groups(n_users: int, n_cands: int, seed: int = 0) -> List[UserGroup]:
    """Synthetic seqrec-style groups: candidate 0 is the target."""
    groups, slot = [], 0
    for u in range(n_users):
        cands = tuple(f"i{u}_{j}" for j in range(n_cands))
        groups.append(UserGroup(f"u{u}", (f"h{u}_a", f"h{u}_b"), cands, tuple(range(slot, slot + n_cands))))
        slot += n_cands
    return groups


def texts_for(groups: List[UserGroup]) -> Dict[str, str]:
    out = {}
    for g in groups:
        for i in g.history + g.candidates:
            out[i] = f"item {i} about topic {hash(i) % 7}"
    return out


def context(groups, scorer, tmp_path: Path, template: Optional[Template] = None, **settings) -> SchemeContext:
    settings.setdefault("task", "seqrec_like")
    task = settings.pop("task")
    cfg = RunConfig(scheme="listwise", progress=False, **settings)
    cfg.task = task  # a task name only the scheme's may_cut lookup reads (patched per test)
    tpl = template or Template.load("listwise", None, layout="prompt")
    builder = PromptBuilder(tpl, "item", scorer.count_tokens, scorer.context_budget)
    return SchemeContext(scenario="synthetic", groups=groups, num_scores=sum(len(g.candidates) for g in groups),
                         texts=texts_for(groups), scorer=scorer, cache=ScoreCache(tmp_path / "scores.sqlite"),
                         namespace="ns", builder=builder, config=cfg, desc="synthetic")


@pytest.fixture(autouse=True)
def _cut_allowed(monkeypatch):
    """Synthetic groups behave like seqrec's (target first, may be cut) unless a test says not."""
    monkeypatch.setattr(ListwiseScheme, "_may_cut", staticmethod(lambda cfg: cfg.task != "ctr"))


def target_ranks(out, groups) -> np.ndarray:
    """1-based rank of candidate 0 within each group (ties pessimistic, as the metrics)."""
    ranks = []
    for g in groups:
        s = out.scores[list(g.slots)]
        ranks.append(1 + int(np.sum(s[1:] >= s[0])))
    return np.asarray(ranks)


# -- pure pieces ------------------------------------------------------------------------------
def test_identifiers_letters_then_numbers():
    assert identifiers(3, 20) == ["A", "B", "C"]
    assert identifiers(26, 26)[-1] == "Z"
    assert identifiers(3, 30) == ["1", "2", "3"]


def test_shown_order_is_a_seeded_permutation_of_user_and_index_only():
    a = shown_order(2024, "u1", 0, 20)
    assert sorted(a) == list(range(20))
    assert a == shown_order(2024, "u1", 0, 20)
    assert a != shown_order(2024, "u1", 1, 20)
    assert a != shown_order(2024, "u2", 0, 20)
    assert a != shown_order(7, "u1", 0, 20)


def test_shown_order_ignores_the_candidates(tmp_path):
    """Two users with the same id but different candidate items see the same order: nothing
    about the items (nor where the target is) enters the shuffle."""
    gen = Scripted(in_shown_order)
    g1 = UserGroup("same", ("h",), tuple(f"x{j}" for j in range(8)), tuple(range(8)))
    g2 = UserGroup("same", ("h",), tuple(f"y{j}" for j in range(8))[::-1], tuple(range(8, 16)))
    ctx = context([g1, g2], gen, tmp_path, log_samples=True, listwise_k=8)
    out = get_scheme("listwise").score(ctx)
    pos = out.shown["shown_position"]
    assert pos[:8] == pos[8:]


@pytest.mark.parametrize("text, order, missing, repeated, invented", [
    ("[C] > [A] > [B]", [2, 0, 1], 0, 0, 0),
    ("Ranking: [c] > [a] > [b]", [2, 0, 1], 0, 0, 0),
    ("C > A > B", [2, 0, 1], 0, 0, 0),
    ("[C]\n[A]\n[B]\n\nI hope this helps! [A] is great.", [2, 0, 1], 0, 0, 0),
    ("Here is my ranking:\n1. [B] thing\n2. [A] other", [1, 0], 1, 0, 0),
    ("[C] > [A] > [C] > [B]", [2, 0, 1], 0, 1, 0),
    ("[C] > [Z] > [A] > [B] > [first]", [2, 0, 1], 0, 0, 2),
    ("I like them all.", [], 3, 0, 0),
    ("", [], 3, 0, 0),
])
def test_parse_ranking(text, order, missing, repeated, invented):
    p = parse_ranking(text, ["A", "B", "C"])
    assert (p.order, p.missing, p.repeated, p.invented) == (order, missing, repeated, invented)
    assert p.valid == (missing == repeated == invented == 0)


def test_parse_numbers_and_reason():
    p = parse_ranking("[2] > [10] > [1]\nReason: it matches the [3] history.\nmore", [str(i) for i in range(1, 11)])
    assert p.order == [1, 9, 0] and p.missing == 7 and p.invented == 0
    assert p.reason == "it matches the [3] history."
    assert parse_ranking("[B] > [A] Reason: close to the history", ["A", "B"]).reason == "close to the history"


def test_fill_rule_ranks_unranked_in_shown_order_and_borda():
    assert full_ranking([3, 1], 5) == [3, 1, 0, 2, 4]
    # shown[s] = candidate at position s; the answer ranks position 3 then 1
    shown = [4, 2, 0, 1, 3]
    ranks = candidate_ranks([3, 1], shown)
    # positions 3, 1, then the unranked 0, 2, 4: candidates 1, 2, 4, 0, 3
    assert ranks == [3, 0, 1, 4, 2]
    assert borda([[0, 1, 2], [2, 1, 0]], 3).tolist() == [2.0, 2.0, 2.0]
    assert borda([[0, 1, 2]], 3).tolist() == [3.0, 2.0, 1.0]


# -- scoring ----------------------------------------------------------------------------------
def test_fill_never_favours_the_target_statistically(tmp_path):
    """With answers that name nothing, or only the first five shown identifiers, the target's
    rank is whatever the shuffle made it: uniform over 1..k (mean 10.5, hit@1 0.05 for k=20)."""
    groups = make_groups(1500, 30)
    for answer in (garbage, lambda p, ids, t: " > ".join(f"[{i}]" for i in reversed(ids[:5]))):
        ctx = context(groups, Scripted(answer), tmp_path / answer.__name__, listwise_k=20)
        out = get_scheme("listwise").score(ctx)
        ranks = target_ranks(out, groups)
        assert ranks.max() <= 20  # the target is always shown
        assert abs(ranks.mean() - 10.5) < 0.6  # sd of the mean is 0.15
        assert 0.03 < np.mean(ranks == 1) < 0.075
        counts = np.bincount(ranks, minlength=21)[1:]
        assert counts.min() > 40  # every rank happens (expected 75 each)


def test_fill_cannot_favour_the_target_by_construction(tmp_path):
    """A candidate's score is a function of the position it was shown at and the answer only:
    the items, and which slot the task put the target in, do not enter."""
    base = make_groups(1, 6)[0]
    other = UserGroup(base.user_id, base.history, tuple(reversed(base.candidates)), base.slots)
    for name, answer, by_position in (("garbage", garbage, [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]),
                                      ("partial", lambda p, ids, t: "[B] > [A]", [5.0, 6.0, 4.0, 3.0, 2.0, 1.0])):
        for g in (base, other):
            ctx = context([g], Scripted(answer), tmp_path / name / g.candidates[0], listwise_k=6)
            scores = get_scheme("listwise").score(ctx).scores
            order = shown_order(ctx.config.seed, g.user_id, 0, 6)
            assert [scores[order[s]] for s in range(6)] == by_position


def test_scores_beyond_k_are_lowest_and_target_always_shown(tmp_path):
    groups = make_groups(20, 30)
    gen = Scripted(in_shown_order)
    out = get_scheme("listwise").score(context(groups, gen, tmp_path, listwise_k=10))
    for g in groups:
        s = out.scores[list(g.slots)]
        assert s[10:].max() == 0.0 and s[:10].min() >= 1.0
        assert sorted(s[:10].tolist()) == [float(v) for v in range(1, 11)]
    lw = out.meta["ranking"]
    assert lw["users_cut"] == 20 and lw["candidates_not_shown"] == 20 * 20
    assert all(p.count("\n[") == 10 for p in gen.calls)


def test_permutations_combine_by_borda(tmp_path):
    groups = make_groups(5, 8)
    gen = Scripted(lambda p, ids, texts: " > ".join(f"[{i}]" for _, i in sorted(zip(texts, ids))))
    out = get_scheme("listwise").score(context(groups, gen, tmp_path, listwise_k=8, permutations=3,
                                               log_samples=True))
    assert len(gen.calls) == 15 and len(set(gen.calls)) == 15
    for g in groups:
        ranks = [out.shown["listwise_rank"][s] for s in g.slots]
        for j, slot in enumerate(g.slots):
            assert out.scores[slot] == pytest.approx(np.mean([8 - r for r in ranks[j]]))
        positions = [out.shown["shown_position"][s] for s in g.slots]
        assert all(len(p) == 3 for p in positions)
        for p in range(3):
            assert sorted(pos[p] for pos in positions) == list(range(8))
    # the answer sorts by text, whatever the shown order: every permutation agrees
    assert out.meta["ranking"]["valid_output_rate"] == 1.0
    assert out.metrics["valid_output_rate"] == 1.0


def test_answers_committed_as_they_come_and_rerun_generates_nothing(tmp_path):
    groups = make_groups(12, 6)
    killed = Scripted(in_shown_order, fail_after=5)
    ctx = context(groups, killed, tmp_path, listwise_k=6)
    with pytest.raises(KeyboardInterrupt):
        get_scheme("listwise").score(ctx)
    assert ctx.cache.count() == 5  # each answer committed the moment it existed
    resumed = Scripted(in_shown_order)
    out = get_scheme("listwise").score(context(groups, resumed, tmp_path, listwise_k=6))
    assert len(resumed.calls) == 7 and out.computed == 7 and out.cached == 5
    again = Scripted(garbage)  # a rerun asks the model nothing: the cache answers
    out2 = get_scheme("listwise").score(context(groups, again, tmp_path, listwise_k=6))
    assert again.calls == [] and out2.computed == 0
    np.testing.assert_array_equal(out.scores, out2.scores)


def test_cache_key_covers_the_answer_allowance(tmp_path):
    groups = make_groups(3, 5)
    get_scheme("listwise").score(context(groups, Scripted(in_shown_order), tmp_path, listwise_k=5))
    gen = Scripted(in_shown_order)
    get_scheme("listwise").score(context(groups, gen, tmp_path, listwise_k=5, max_new_tokens=7))
    assert len(gen.calls) == 3


def test_never_valid_warns_not_crashes(tmp_path, capsys):
    groups = make_groups(4, 5)
    out = get_scheme("listwise").score(context(groups, Scripted(garbage), tmp_path, listwise_k=5))
    err = capsys.readouterr().err
    assert "none of 4 list-wise answers was a valid ranking" in err and "4 held no identifier" in err
    assert out.metrics["valid_output_rate"] == 0.0
    assert out.meta["ranking"]["answers_without_identifiers"] == 4


def test_parse_counts_per_user_and_in_meta(tmp_path):
    groups = make_groups(3, 4)
    answers = iter(["[A] > [B] > [C] > [D]", "[A] > [A] > [Q]", "[B] > [A] > [D] > [C]"])
    out = get_scheme("listwise").score(context(groups, Scripted(lambda *a: next(answers)), tmp_path,
                                               listwise_k=4, log_samples=True))
    parses = [out.shown["parse"][g.slots[0]][0] for g in groups]
    assert parses[1] == {"valid": False, "missing": 3, "repeated": 1, "invented": 1}
    assert [p["valid"] for p in parses] == [True, False, True]
    assert out.shown["parse"][groups[0].slots[1]] is None  # user-level columns sit on the first slot
    lw = out.meta["ranking"]
    assert (lw["valid_answers"], lw["missing_identifiers"], lw["repeated_identifiers"],
            lw["invented_identifiers"]) == (2, 3, 1, 1)
    assert lw["valid_output_rate"] == pytest.approx(2 / 3)


def test_position_bias_block_for_a_model_that_copies_the_shown_order(tmp_path):
    groups = make_groups(50, 6)
    out = get_scheme("listwise").score(context(groups, Scripted(in_shown_order), tmp_path, listwise_k=6))
    pb = out.meta["ranking"]["position_bias"]
    assert pb["positions"] == 6
    assert pb["all"]["mean_rank"] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert pb["all"]["top1_rate"][0] == 1.0 and pb["all"]["n"] == [50] * 6
    assert sum(pb["first_candidate"]["n"]) == 50  # the target: once per valid answer
    first = pb["first_candidate"]["mean_rank"]
    assert all(v == s + 1 for s, v in enumerate(first) if v is not None)


def test_explain_asks_and_keeps_the_reason(tmp_path):
    groups = make_groups(3, 4)

    def explains(prompt, ids, texts):
        assert 'on a new line starting with "Reason:"' in prompt
        return " > ".join(f"[{i}]" for i in ids) + f"\nReason: because of {texts[0]}"

    out = get_scheme("listwise").score(context(groups, Scripted(explains), tmp_path, listwise_k=4, explain=True,
                                               log_samples=True))
    reasons = [out.shown["reason"][g.slots[0]][0] for g in groups]
    assert all(r.startswith("because of item") for r in reasons)
    assert out.meta["ranking"]["valid_output_rate"] == 1.0


def test_explain_needs_the_placeholder(tmp_path):
    own = tmp_path / "mine.txt"
    own.write_text("History:\n{history}\nCandidates:\n{candidate}\nRank them:")
    tpl = Template.load("listwise", str(own), layout="prompt")
    with pytest.raises(ConfigError, match=r"\{explain\} placeholder"):
        get_scheme("listwise").score(context(make_groups(1, 3), Scripted(garbage), tmp_path, template=tpl,
                                             explain=True))
    out = get_scheme("listwise").score(context(make_groups(1, 3), Scripted(in_shown_order), tmp_path / "b",
                                               template=tpl))
    assert out.meta["ranking"]["valid_output_rate"] == 1.0


def test_ctr_groups_larger_than_k_are_refused_not_cut(tmp_path):
    groups = make_groups(2, 12)
    with pytest.raises(ConfigError, match=r"more than --listwise-k 10 candidates \(up to 12\).*--listwise-k 12"):
        get_scheme("listwise").score(context(groups, Scripted(garbage), tmp_path, listwise_k=10, task="ctr"))
    out = get_scheme("listwise").score(context(groups, Scripted(in_shown_order), tmp_path, listwise_k=12,
                                               task="ctr"))
    assert out.meta["ranking"]["users_cut"] == 0


def test_task_declarations_for_cutting(monkeypatch):
    from recbench.tasks import get_task

    monkeypatch.undo()  # the real lookup
    cfg = RunConfig(task="ctr")
    assert get_task("ctr").may_cut_groups(cfg) is False
    assert ListwiseScheme._may_cut(cfg) is False


def test_long_candidate_texts_are_shortened_not_dropped(tmp_path):
    class Small(Scripted):
        @property
        def context_budget(self):
            return 900

    groups = make_groups(2, 10)
    ctx = context(groups, Small(in_shown_order), tmp_path, listwise_k=10, max_new_tokens=60)
    for g in groups:
        for c in g.candidates:
            ctx.texts[c] = "long words " * 80
    gen = ctx.scorer
    out = get_scheme("listwise").score(ctx)
    assert all(p.count("\n[") == 10 and "[J]" in p for p in gen.calls)
    assert all(len(p.split()) <= 900 - 60 for p in gen.calls)
    assert ctx.builder.stats.candidates_shortened > 0
    assert out.meta["ranking"]["valid_output_rate"] == 1.0


# -- the dummy generator, models, settings ------------------------------------------------------
def test_dummy_generator_is_deterministic_and_sometimes_malformed(tmp_path):
    groups = make_groups(200, 20)
    ctx = context(groups, DummyTextGenerator(ALIASES["dummy"]), tmp_path, log_samples=True)
    out = get_scheme("listwise").score(ctx)
    lw = out.meta["ranking"]
    assert 0.6 < lw["valid_output_rate"] < 0.85
    assert lw["missing_identifiers"] and lw["repeated_identifiers"] and lw["invented_identifiers"]
    assert lw["answers_without_identifiers"] > 0
    ctx2 = context(groups, DummyTextGenerator(ALIASES["dummy"]), tmp_path / "again")
    np.testing.assert_array_equal(get_scheme("listwise").score(ctx2).scores, out.scores)
    gen = DummyTextGenerator(ALIASES["dummy"])
    assert len(gen.generate([ctx.scorer.render(out.shown["prompt"][0][0])], 5)[0].split()) <= 5


def test_generation_ability_only_where_a_model_can_generate():
    for name in ("minilm", "e5", "bert-base"):
        assert "generation" not in ALIASES[name].abilities
        assert "listwise" not in schemes_for(ALIASES[name])
    for name in ("smollm2-135m", "llama-3", "dummy", "gpt-3.5"):
        assert "generation" in ALIASES[name].abilities
    assert "generation" in resolve_model("openai:gpt-4o-mini").abilities
    assert schemes_for(ALIASES["dummy"])[0] == "generative"  # defaults unchanged
    with pytest.raises(ConfigError, match="cannot serve the listwise scheme"):
        resolve_scheme("listwise", ALIASES["minilm"])
    assert scorer_class("dummy", "generation") is DummyTextGenerator


def test_settings_are_flags_and_validated(tmp_path, capsys):
    rc = main(["zero-shot", "--model", "dummy", "--scheme", "listwise", "--listwise-k", "1", "--quiet"])
    assert rc == 2 and "--listwise-k" in capsys.readouterr().err
    from recbench import RecBench

    with pytest.raises(ConfigError, match="permutations"):
        RecBench(model="dummy", scheme="listwise", permutations=0)


# -- end to end -------------------------------------------------------------------------------
def test_cli_end_to_end_on_ctr_demo_and_resume(tmp_path, capsys):
    args = ["zero-shot", "--model", "dummy", "--scheme", "listwise", "--limit", "100", "--permutations", "2",
            "--explain", "--log-samples", "--output", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c"),
            "--quiet"]
    assert main(args) == 0
    path = tmp_path / "out" / "dummy" / "listwise" / "demo.json"
    doc = json.loads(path.read_text())
    lw = doc["meta"]["ranking"]
    assert lw["users"] == 10 and lw["answers"] == 20 and lw["permutations"] == 2 and lw["explain"]
    assert 0 < lw["valid_output_rate"] <= 1
    assert doc["meta"]["template_id"] == "default" and len(doc["meta"]["template_sha256"]) == 64
    assert doc["meta"]["chat_template"] is False and doc["meta"]["settings"]["listwise_k"] == 20
    assert doc["metrics"]["gauc"] > 0.5  # the dummy's overlap carries signal on the demo
    rows = [json.loads(line) for line in (path.with_name("demo.samples.jsonl")).read_text().splitlines()]
    assert len(rows) == 100 and all(len(r["shown_position"]) == 2 for r in rows)
    assert sum(r["reason"] is not None for r in rows) == 10
    assert doc["meta"]["timings"]["computed"] == 20
    assert main(args) == 0
    doc2 = json.loads(path.read_text())
    assert doc2["meta"]["timings"]["computed"] == 0 and doc2["metrics"] == doc["metrics"]


def test_position_bias_figure_from_results(tmp_path):
    pytest.importorskip("matplotlib")
    from recbench.report import collect_results
    from recbench.report.figures import position_bias_entries, position_bias_figure

    assert main(["zero-shot", "--model", "dummy", "--scheme", "listwise", "--limit", "100", "--output",
                 str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c"), "--quiet"]) == 0
    assert main(["zero-shot", "--model", "dummy", "--limit", "100", "--output", str(tmp_path / "out"),
                 "--cache-dir", str(tmp_path / "c"), "--quiet"]) == 0
    records = collect_results(tmp_path / "out").to_dict("records")
    entries = position_bias_entries(records)
    assert len(records) == 2 and len(entries) == 1  # only the list-wise run has one
    assert entries[0][0].startswith("dummy · demo")
    fig = position_bias_figure(entries)
    fig.savefig(tmp_path / "pb.png")
    assert (tmp_path / "pb.png").stat().st_size > 1000
    lines = fig.axes[1].get_lines()
    assert len(lines) == 2  # the run and the no-bias reference


def test_a_subset_of_groups_leaves_the_other_slots_nan(tmp_path):
    from dataclasses import replace

    groups = make_groups(6, 5)
    ctx = context(groups, Scripted(in_shown_order), tmp_path, listwise_k=5)
    part = get_scheme("listwise").score(replace(ctx, groups=groups[::2]))
    for i, g in enumerate(groups):
        s = part.scores[list(g.slots)]
        assert np.isnan(s).all() if i % 2 else not np.isnan(s).any()


def test_shards_then_merge_by_rerun_equal_one_process(tmp_path):
    common = ["zero-shot", "--model", "dummy", "--scheme", "listwise", "--limit", "60", "--quiet"]
    out = tmp_path / "res"
    for i in range(2):
        assert main(common + ["--shard", f"{i}/2", "--output", str(out), "--cache-dir", str(tmp_path / "c")]) == 0
    assert not list(out.glob("**/demo.json"))
    assert main(common + ["--output", str(out), "--cache-dir", str(tmp_path / "c")]) == 0
    merged = json.loads((out / "dummy" / "listwise" / "demo.json").read_text())
    assert merged["meta"]["timings"]["computed"] == 0  # every answer came from the shards
    assert main(common + ["--output", str(tmp_path / "one"), "--cache-dir", str(tmp_path / "c1")]) == 0
    one = json.loads((tmp_path / "one" / "dummy" / "listwise" / "demo.json").read_text())
    assert one["metrics"] == merged["metrics"] and one["meta"]["ranking"] == merged["meta"]["ranking"]


def _has_seqrec() -> bool:
    from recbench.tasks import TASKS

    return "seqrec" in TASKS


@pytest.mark.skipif(not _has_seqrec(), reason="the seqrec task is not on this branch yet")
def test_seqrec_end_to_end_target_first_and_rank_by_shown_position(tmp_path):
    """`recbench zero-shot --task seqrec --model dummy --scheme listwise`: the target (the
    task's first candidate) is always shown, the other 80 candidates rank below, and the
    target's rank by shown position in meta.ranking.position_bias agrees with the log."""
    out = tmp_path / "out"
    assert main(["zero-shot", "--task", "seqrec", "--model", "dummy", "--scheme", "listwise", "--limit", "30",
                 "--log-samples", "--output", str(out), "--cache-dir", str(tmp_path / "c"), "--quiet"]) == 0
    path = next(out.glob("dummy/listwise/**/demo.json"))
    doc = json.loads(path.read_text())
    rk = doc["meta"]["ranking"]
    assert doc["task"] == "seqrec" and rk["users"] == rk["users_cut"] == 30
    assert rk["candidates_not_shown"] == 30 * 80
    assert doc["metrics"]["recall@20"] == 1.0  # the target is always among the 20 shown
    rows = [json.loads(line) for line in path.with_name("demo.samples.jsonl").read_text().splitlines()]
    first_of = {}
    for r in rows:
        if r["parse"] is not None:
            first_of[r["user_id"]] = r["parse"][0]["valid"]
    by_pos: Dict[int, List[int]] = {}
    for r in rows:
        if r["label"] == 1:
            assert r["shown_position"] is not None
            if first_of[r["user_id"]]:
                by_pos.setdefault(r["shown_position"][0], []).append(r["listwise_rank"][0] + 1)
    means = rk["position_bias"]["first_candidate"]["mean_rank"]
    for s, ranks in by_pos.items():
        assert means[s] == pytest.approx(np.mean(ranks))
    assert sum(rk["position_bias"]["first_candidate"]["n"]) == rk["valid_answers"]
