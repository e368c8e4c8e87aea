"""RecBench: scenarios x one scorer -> metrics and results files.

The loop is the same for every backend: build the protocol's requests from the samples,
take what the per-request cache already holds, score the rest in chunks (committing each
chunk to the cache as it is computed, so a killed run resumes), compute metrics from the
unrounded scores, and write one results JSON per scenario atomically.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from . import __version__
from .cache import ScoreCache, namespace, request_key
from .config import SCHEMES, RunConfig
from .errors import ConfigError, DataError, suggest
from .metrics import compute_metrics
from .models import ModelSpec, check_scheme, resolve_model
from .prompts import PromptBuilder, PromptRequest, Template
from .results import package_versions, results_path, utc_now, write_results, atomic_write_lines
from .scenarios import BENCHMARK_SCENARIOS, PROTOCOL_VERSION, Scenario, list_scenarios, load_scenario

CHUNK_USERS = 8  # users per scoring call: small enough to checkpoint often
TABLE_COLUMNS = ["scenario", "model", "scheme", "n", "auc", "gauc", "mrr", "ndcg@1", "ndcg@5", "ndcg@10"]


@dataclass
class ScenarioRun:
    """What one scenario's evaluation produced."""

    scenario: str
    metrics: Dict
    meta: Dict
    path: Optional[Path] = None
    samples: Optional[pd.DataFrame] = None


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="sample", disable=not enabled or total == 0,
                file=sys.stderr, dynamic_ncols=True, smoothing=0.1)


def default_scenarios(raw_dir: Optional[str]) -> List[str]:
    """Scenarios with raw data under the root, else the bundled demo."""
    root = raw_dir
    if root is None:
        import os

        root = os.environ.get("RECBENCH_DATA")
    if root:
        found = [n for n in BENCHMARK_SCENARIOS if (Path(root).expanduser() / n).is_dir()]
        if found:
            return found
    return ["demo"]


def parse_scenarios(value: Union[None, str, Sequence[str]], raw_dir: Optional[str]) -> List[str]:
    if value is None or value == "" or value == []:
        return default_scenarios(raw_dir)
    names = value.split(",") if isinstance(value, str) else list(value)
    names = [n.strip().lower() for n in names if n and n.strip()]
    if names == ["all"]:
        return list(BENCHMARK_SCENARIOS)
    known = list_scenarios()
    for n in names:
        if n not in known:
            raise ConfigError(f"unknown scenario '{n}'" + suggest(n, known + ["all"]))
    return list(dict.fromkeys(names))


class RecBench:
    """Evaluate one model under one scheme on several scenarios.

        bench = RecBench(model="smollm2-135m", scheme="generative", scenarios=["demo"])
        table = bench.evaluate()          # one row per scenario
    """

    def __init__(
        self,
        model: str,
        scheme: str = "generative",
        scenarios: Union[None, str, Sequence[str]] = None,
        limit: Optional[int] = None,
        output_dir: str = "results",
        log_samples: bool = False,
        adapter: Optional[str] = None,
        **settings,
    ):
        valid = {f.name for f in fields(RunConfig)}
        unknown = set(settings) - valid
        if unknown:
            bad = sorted(unknown)[0]
            raise ConfigError(f"RecBench got an unknown setting '{bad}'" + suggest(bad, valid))
        if scheme not in SCHEMES:
            raise ConfigError(f"unknown scheme '{scheme}'" + suggest(scheme, SCHEMES))
        if limit is not None and int(limit) < 1:
            raise ConfigError("limit must be a positive number of samples")
        self.model = model
        self.config = RunConfig(scheme=scheme, limit=limit, output_dir=str(output_dir), log_samples=log_samples,
                                adapter=adapter, **settings)
        self.scenarios = parse_scenarios(scenarios, self.config.raw_dir)
        self.spec: ModelSpec = resolve_model(model, revision=self.config.revision)
        check_scheme(self.spec, scheme)
        if self.config.chat_template is None:
            self.config.chat_template = self.spec.chat_default and scheme == "generative"
        self.template = Template.load(scheme, self.config.template)
        self.runs: List[ScenarioRun] = []

    # -- public ---------------------------------------------------------------------------
    def evaluate(self) -> pd.DataFrame:
        """Score every scenario; returns one row per scenario (metrics as columns)."""
        cfg = self.config
        loaded = [self._load(name) for name in self.scenarios]  # data errors before model loading
        from .scorers import make_scorer

        t0 = time.perf_counter()
        scorer = make_scorer(self.spec, cfg)
        load_s = time.perf_counter() - t0
        cache = ScoreCache.default() if cfg.cache_dir is None else ScoreCache(Path(cfg.cache_dir) / "scores.sqlite")
        try:
            self.runs = []
            for sc in loaded:
                run = self._run_scenario(sc, scorer, cache)
                run.meta["timings"]["model_load_s"] = round(load_s, 3)
                if not cfg.dry_run:
                    self._write(run)
                self.runs.append(run)
        finally:
            cache.close()
            scorer.close()
        return self.table()

    def table(self) -> pd.DataFrame:
        rows = []
        for run in self.runs:
            row = {"scenario": run.scenario, "model": self.model, "scheme": self.config.scheme}
            row.update(run.metrics)
            rows.append(row)
        df = pd.DataFrame(rows)
        front = [c for c in TABLE_COLUMNS if c in df.columns]
        return df[front + [c for c in df.columns if c not in front]] if not df.empty else df

    def finetune(self, **kwargs):
        """Fine-tune this model with LoRA (see recbench.sft); returns the SFT result."""
        from .sft.train import finetune_from_bench

        return finetune_from_bench(self, **kwargs)

    def leaderboard(self, metric: str = "gauc", **kwargs) -> Dict[str, pd.DataFrame]:
        """Leaderboard tables over this bench's output folder (see recbench.report)."""
        from .report import leaderboard_tables

        return leaderboard_tables(self.config.output_dir, metric=metric, **kwargs)

    @property
    def model_slug(self) -> str:
        """The results folder name: the model plus every setting that makes it a variant
        (so a chat-template or other-template run never overwrites the default run)."""
        slug = self.spec.slug
        if self.config.scheme == "generative" and self.config.chat_template != self.spec.chat_default:
            slug += "+chat" if self.config.chat_template else "+nochat"
        if self.template.id != "default":
            slug += f"+tpl-{self.template.id}"
        if self.config.adapter:
            from .sft.adapter import adapter_hash

            slug += f"+lora-{adapter_hash(self.config.adapter)}"
        return slug

    # -- steps ----------------------------------------------------------------------------
    def _load(self, name: str) -> Scenario:
        cfg = self.config
        opts = dict(cfg.scenario_options.get(name, {}))
        # evaluation needs no fine-tuning set (test users are drawn first, so the test set
        # is the same either way)
        return load_scenario(name, cfg.raw_dir, seed=cfg.seed, num_test=cfg.num_test, num_finetune=0,
                             strict=cfg.strict, use_cache=cfg.use_cache,
                             progress=(lambda m: print(m, file=sys.stderr)) if cfg.progress else None, **opts)

    def _samples(self, sc: Scenario) -> pd.DataFrame:
        test = sc.test
        if self.config.limit is not None:
            test = test.iloc[: int(self.config.limit)]
        if test.empty:
            raise DataError(f"{sc.name}: the test set is empty; nothing to score")
        return test.reset_index(drop=True)

    def _groups(self, test: pd.DataFrame) -> List[Tuple[List[str], List[int]]]:
        """(history, row indices) per user: consecutive rows of one user share a history."""
        groups: List[Tuple[List[str], List[int]]] = []
        last = None
        for i, (u, hist) in enumerate(zip(test["user_id"], test["history"])):
            key = (u, tuple(hist))
            if key != last:
                groups.append((list(hist), []))
                last = key
            groups[-1][1].append(i)
        return groups

    def _run_scenario(self, sc: Scenario, scorer, cache: ScoreCache) -> ScenarioRun:
        cfg = self.config
        test = self._samples(sc)
        texts = sc.item_text()
        missing_text = [i for i in set(test["item_id"]) if i not in texts]
        if missing_text:
            raise DataError(f"{sc.name}: {len(missing_text)} candidate item(s) have no text (e.g. {missing_text[0]})")
        builder = PromptBuilder(self.template, sc.item_noun, scorer.count_tokens, scorer.context_budget)
        identity = scorer.identity()  # may hash model files: compute once per scenario
        ns = namespace(identity, scheme=cfg.scheme, template=self.template.sha256)
        t0 = time.perf_counter()
        if cfg.scheme == "generative":
            scores, extra_meta, shown = self._score_generative(sc, test, texts, builder, scorer, cache, ns)
        else:
            scores, extra_meta, shown = self._score_discriminative(sc, test, texts, builder, scorer, cache, ns)
        score_s = time.perf_counter() - t0
        diag = scorer.diagnostics()
        if cfg.dry_run:
            return ScenarioRun(sc.name, {}, {"dry_run": extra_meta.get("dry_run"), "timings": {}})
        scores = np.asarray(scores, dtype=np.float64)
        binary = bool(diag.get("binary"))
        metrics = compute_metrics(test["user_id"].to_numpy(), test["label"].to_numpy(), scores,
                                  probabilities=cfg.scheme == "generative" and not binary,
                                  bootstrap=cfg.bootstrap, seed=cfg.seed)
        meta = {
            "model_id": identity.get("model_id", self.spec.public_id),
            "model_revision": identity.get("revision"),
            "adapter": getattr(scorer, "adapter_info", None),
            "backend": self.spec.backend,
            "scheme": cfg.scheme,
            "seed": cfg.seed,
            "protocol_version": PROTOCOL_VERSION,
            "template_id": self.template.id,
            "template_sha256": self.template.sha256,
            "chat_template": cfg.chat_template,
            "label_token_ids": scorer.label_info() if cfg.scheme == "generative" else None,
            "data_fingerprint": sc.fingerprint,
            "n": int(len(test)),
            "limit": cfg.limit,
            "scores_binary": binary,
            "truncation": builder.stats.as_dict(),
            "scorer": diag,
            "identity": identity,
            "settings": cfg.public(),
            "timings": {"score_s": round(score_s, 3), **extra_meta.pop("timings", {})},
            "packages": package_versions(),
            "created": utc_now(),
            **extra_meta,
        }
        samples = test[["user_id", "item_id", "label"]].copy()
        samples["score"] = scores
        for k, v in shown.items():
            samples[k] = v
        return ScenarioRun(sc.name, metrics, meta, samples=samples)

    def _score_generative(self, sc, test, texts, builder, scorer, cache, ns):
        cfg = self.config
        requests: List[Optional[PromptRequest]] = [None] * len(test)
        chunks: List[List[int]] = []
        for hist, rows in self._groups(test):
            reqs = builder.user_prompts([texts[h] for h in hist if h in texts], [texts[test["item_id"][r]] for r in rows])
            for r, q in zip(rows, reqs):
                requests[r] = q
            chunks.append(rows)
        rendered = [scorer.render(q) for q in requests]
        keys = [request_key(ns, q.text) for q in rendered]
        if cfg.dry_run:
            return self._dry_run(sc, scorer, requests, keys, cache)
        if hasattr(scorer, "attach_cache"):
            scorer.attach_cache(cache, ns)
        found = cache.get_scores(keys)
        extras_found = cache.get_extras(keys)
        todo_users = [rows for rows in chunks if any(keys[r] not in found for r in rows)]
        n_todo = sum(1 for k in keys if k not in found)
        bar = _progress(n_todo, f"{sc.name} [{self.spec.name}]", cfg.progress)
        computed = 0
        # API scorers send a chunk concurrently: give them enough users to fill the pool
        chunk = max(CHUNK_USERS, int(getattr(scorer, "concurrency", 0) or 0) * 2)
        for start in range(0, len(todo_users), chunk):
            rows = [r for grp in todo_users[start : start + chunk] for r in grp if keys[r] not in found]
            scores, extras = scorer.score_detailed([requests[r] for r in rows])
            fresh = {keys[r]: s for r, s in zip(rows, scores)}
            fresh_extra = {keys[r]: e for r, e in zip(rows, extras) if e}
            cache.put_scores(fresh, fresh_extra)
            found.update(fresh)
            extras_found.update(fresh_extra)
            computed += len(fresh)
            bar.update(len(rows))
        bar.close()
        masses = [e.get("mass") for e in (extras_found.get(k) for k in keys) if e and e.get("mass") is not None]
        meta = {
            "label_mass_mean": float(np.mean(masses)) if masses else None,
            "timings": {"requests": len(keys), "cached": len(keys) - computed, "computed": computed},
        }
        shown = {"prompt": [q.text for q in rendered]} if cfg.log_samples else {}
        return [found[k] for k in keys], meta, shown

    def _score_discriminative(self, sc, test, texts, builder, scorer, cache, ns):
        cfg = self.config
        user_text_of: Dict[Tuple[str, ...], str] = {}
        for hist, _rows in self._groups(test):
            key = tuple(hist)
            if key not in user_text_of:
                user_text_of[key] = builder.user_text([texts[h] for h in hist if h in texts])
        item_text_of = {i: builder.item_text(texts[i]) for i in dict.fromkeys(test["item_id"])}
        if cfg.dry_run:
            return self._dry_run(sc, scorer, list(user_text_of.values()) + list(item_text_of.values()), [], cache)
        vectors: Dict[str, np.ndarray] = {}
        computed = 0
        for role, distinct in (("user", list(dict.fromkeys(user_text_of.values()))),
                               ("item", list(dict.fromkeys(item_text_of.values())))):
            keys = [request_key(ns, f"{role}\x00{t}") for t in distinct]
            found = cache.get_vectors(keys)
            todo = [k for k in range(len(distinct)) if keys[k] not in found]
            bar = _progress(len(todo), f"{sc.name} [{self.spec.name}] {role}s", cfg.progress)
            step = 256
            for start in range(0, len(todo), step):
                idx = todo[start : start + step]
                vecs = scorer.embed([distinct[k] for k in idx], role)
                fresh = {keys[k]: v for k, v in zip(idx, vecs)}
                cache.put_vectors(fresh)
                found.update(fresh)
                computed += len(idx)
                bar.update(len(idx))
            bar.close()
            for t, k in zip(distinct, keys):
                vectors[f"{role}\x00{t}"] = found[k]
        u = np.stack([vectors["user\x00" + user_text_of[tuple(h)]] for h in test["history"]])
        v = np.stack([vectors["item\x00" + item_text_of[i]] for i in test["item_id"]])
        if cfg.similarity == "cosine":
            u = u / np.clip(np.linalg.norm(u, axis=1, keepdims=True), 1e-12, None)
            v = v / np.clip(np.linalg.norm(v, axis=1, keepdims=True), 1e-12, None)
        elif cfg.similarity != "dot":
            raise ConfigError(f"--similarity must be cosine or dot, got {cfg.similarity!r}")
        scores = np.einsum("ij,ij->i", u.astype(np.float64), v.astype(np.float64))
        meta = {
            "similarity": cfg.similarity,
            "timings": {"distinct_users": len(set(user_text_of.values())), "distinct_items": len(set(item_text_of.values())),
                        "computed_embeddings": computed},
        }
        shown = {}
        if cfg.log_samples:
            shown = {"user_text": [user_text_of[tuple(h)] for h in test["history"]],
                     "item_text": [item_text_of[i] for i in test["item_id"]]}
        return scores, meta, shown

    def _dry_run(self, sc, scorer, requests, keys, cache):
        if not hasattr(scorer, "dry_run_estimate"):
            raise ConfigError("--dry-run estimates API cost; it applies to openai:<model> models only")
        cached = cache.get_scores(keys) if keys else {}
        todo = [q for q, k in zip(requests, keys) if k not in cached] if keys else requests
        est = scorer.dry_run_estimate(todo)
        est["cached"] = len(cached)
        print(f"{sc.name}: {est}", file=sys.stderr)
        return [], {"dry_run": est}, {}

    def _write(self, run: ScenarioRun) -> None:
        doc = {
            "recbench_version": __version__,
            "protocol_version": PROTOCOL_VERSION,
            "scenario": run.scenario,
            "model": self.model,
            "scheme": self.config.scheme,
            "pipeline": "sft" if self.config.adapter else "zero-shot",
            "metrics": run.metrics,
            "meta": run.meta,
        }
        path = results_path(self.config.output_dir, self.model_slug, self.config.scheme, run.scenario)
        write_results(path, doc)
        run.path = path
        if self.config.log_samples and run.samples is not None:
            atomic_write_lines(path.with_name(f"{run.scenario}.samples.jsonl"), run.samples.to_dict("records"))
