"""RecBench: scenarios x task x scheme x one scorer -> metrics and results files.

The loop is the same for every task, scheme and backend: the task draws its samples and
groups them per user, the scheme turns the groups into requests and scores (taking what the
per-request cache holds, committing what it computes as it goes, so a killed run resumes),
the task computes its metrics from the unrounded scores, and one typed results record per
scenario is written atomically. Nothing here knows a task's, a scheme's or a backend's name.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import pandas as pd

from . import __version__
from .cache import ScoreCache, namespace
from .config import RunConfig
from .distributed import ProcessGroup, Shard, detect
from .efficiency import measure
from .errors import ConfigError, DataError, suggest
from .models import ModelSpec, resolve_model
from .prompts import PromptBuilder
from .results import RunResult, atomic_write_lines, package_versions, utc_now
from .scenarios import BENCHMARK_SCENARIOS, Scenario, list_scenarios
from .schemes import Scheme, SchemeContext, resolve_scheme
from .scorers import scorer_class
from .settings import check_keywords, validate
from .tasks import Task, get_task

ID_COLUMNS = ["scenario", "model", "scheme", "n"]  # then the task's metrics, then "task" and the rest


@dataclass
class ScenarioRun:
    """What one scenario's evaluation produced."""

    scenario: str
    metrics: Dict
    meta: Dict
    path: Optional[Path] = None
    samples: Optional[pd.DataFrame] = None


def default_scenarios(raw_dir: Optional[str]) -> List[str]:
    """Scenarios with raw data under the root, else the bundled demo."""
    root = raw_dir or os.environ.get("RECBENCH_DATA")
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


def open_score_cache(cfg: RunConfig) -> ScoreCache:
    return ScoreCache.default() if cfg.cache_dir is None else ScoreCache(Path(cfg.cache_dir) / "scores.sqlite")


class RecBench:
    """Evaluate one model under one scheme on several scenarios.

        bench = RecBench(model="smollm2-135m", scheme="generative", scenarios=["demo"])
        table = bench.evaluate()          # one row per scenario

    Every field of :class:`recbench.config.RunConfig` is accepted as a keyword (task,
    batch_size, seed, ...); all settings are checked here, before any data or model work.
    """

    def __init__(
        self,
        model: str,
        scheme: Optional[str] = None,
        scenarios: Union[None, str, Sequence[str]] = None,
        limit: Optional[int] = None,
        output_dir: str = "results",
        log_samples: bool = False,
        adapter: Optional[str] = None,
        **settings,
    ):
        check_keywords(RunConfig, settings, "RecBench")
        self.model = model
        cfg = RunConfig(scheme=scheme, limit=limit, output_dir=str(output_dir), log_samples=log_samples,
                        adapter=adapter, **settings)
        validate(cfg)
        self.config = cfg
        self.task: Task = get_task(cfg.task)
        self.spec: ModelSpec = resolve_model(model, revision=cfg.revision)
        self.scheme: Scheme = resolve_scheme(cfg.scheme, self.spec)
        cfg.scheme = self.scheme.name
        self.scheme.check(cfg)
        self.scorer_cls = scorer_class(self.spec.backend, self.scheme.scorer_kind)
        if cfg.dry_run and not self.scorer_cls.supports_dry_run:
            raise ConfigError("--dry-run estimates API cost; it applies to openai:<model> models only")
        if cfg.chat_template is None:
            cfg.chat_template = self.scheme.chat_default(self.spec)
        self.template = self.scheme.template(cfg.template)
        self.scenarios = parse_scenarios(scenarios, cfg.raw_dir)
        self.shard: Shard = detect(cfg.shard)
        if not self.shard.is_main:
            cfg.progress = False  # one progress display: rank 0's
        self.runs: List[ScenarioRun] = []

    # -- public ---------------------------------------------------------------------------
    def evaluate(self) -> pd.DataFrame:
        """Score every scenario; returns one row per scenario (metrics as columns)."""
        cfg = self.config
        progress = (lambda m: print(m, file=sys.stderr)) if cfg.progress else None
        loaded = [self.task.load(name, cfg, progress) for name in self.scenarios]  # data errors before the model
        cache = open_score_cache(cfg)  # a broken cache is reported before the model loads
        group = ProcessGroup(self.shard)
        try:
            self._place_on_local_device()
            t0 = time.perf_counter()
            scorer = self.scorer_cls.from_run(self.spec, cfg)
            self.model_load_s = time.perf_counter() - t0
            try:
                self.runs = []
                for sc in loaded:
                    run = self._run_scenario(sc, scorer, cache, group)
                    if run is None:  # another rank writes it, or a --shard job
                        continue
                    if not cfg.dry_run:
                        self._write(run)
                    self.runs.append(run)
            finally:
                scorer.close()
        finally:
            cache.close()
            group.close()
        if self.shard.sharded_only and cfg.progress:
            print(f"recbench: shard {self.shard.rank}/{self.shard.world} scored; when every shard is done, rerun "
                  "the same command without --shard to write the results", file=sys.stderr)
        return self.table()

    def _place_on_local_device(self) -> None:
        """Under torchrun/accelerate, each rank uses its own GPU (cuda:LOCAL_RANK)."""
        if not self.shard.launched or self.config.device is not None:
            return
        try:
            import torch
        except ImportError:
            return
        if torch.cuda.is_available():
            self.config.device = f"cuda:{self.shard.local_rank % torch.cuda.device_count()}"

    def table(self) -> pd.DataFrame:
        rows = []
        for run in self.runs:
            row = {"scenario": run.scenario, "model": self.model, "task": self.task.name,
                   "scheme": self.scheme.name}
            row.update(run.metrics)
            rows.append(row)
        df = pd.DataFrame(rows)
        if df.empty:
            return df
        front = [c for c in ID_COLUMNS + list(self.task.table_columns) + ["task"] if c in df.columns]
        return df[front + [c for c in df.columns if c not in front]]

    def finetune(self, **kwargs):
        """Fine-tune this model with LoRA (see recbench.sft); returns the SFT result."""
        from .sft.train import finetune_from_bench

        return finetune_from_bench(self, **kwargs)

    def leaderboard(self, metric: Optional[str] = None, **kwargs) -> Dict[str, pd.DataFrame]:
        """Leaderboard tables of this bench's task over its output folder (see recbench.report);
        metric None: the task's headline."""
        from .report import leaderboard_tables

        kwargs.setdefault("task", self.task.name)
        return leaderboard_tables(self.config.output_dir, metric=metric, **kwargs)

    @property
    def model_slug(self) -> str:
        """The results folder name: the model plus every setting that makes it a variant
        (so a chat-template or other-template run never overwrites the default run)."""
        slug = self.spec.slug + self.scheme.variant(self.config, self.spec) + self.task.variant(self.config)
        if self.template.id != "default":
            slug += f"+tpl-{self.template.id}"
        if self.config.adapter:
            from .sft.adapter import adapter_hash

            slug += f"+lora-{adapter_hash(self.config.adapter)}"
        return slug

    def results_path(self, scenario: str) -> Path:
        scheme_dir = Path(self.config.output_dir) / self.model_slug / self.scheme.name
        return self.task.results_dir(scheme_dir) / f"{scenario}.json"

    # -- steps ----------------------------------------------------------------------------
    def _run_scenario(self, sc: Scenario, scorer, cache: ScoreCache, group: ProcessGroup) -> Optional[ScenarioRun]:
        cfg, task, scheme = self.config, self.task, self.scheme
        t_start = time.perf_counter()
        samples = task.samples(sc, cfg)
        texts = sc.item_text()
        missing_text = [i for i in task.item_ids(samples) if i not in texts]
        if missing_text:
            raise DataError(f"{sc.name}: {len(missing_text)} candidate item(s) have no text (e.g. {missing_text[0]})")
        builder = PromptBuilder(self.template, sc.item_noun, scorer.count_tokens, scorer.context_budget)
        scheme.prepare(scorer, builder)
        identity = scorer.identity()  # may hash model files: compute once per scenario
        ns = namespace(identity, scheme=scheme.name, template=self.template.sha256)
        scorer.begin_scenario()
        ctx = SchemeContext(scenario=sc.name, groups=task.groups(samples), num_scores=task.num_scores(samples),
                            texts=texts, scorer=scorer, cache=cache, namespace=ns, builder=builder, config=cfg,
                            desc=f"{sc.name} [{self.spec.name}]", fingerprint=sc.fingerprint,
                            catalogue=task.catalogue(samples) if scheme.ranks_catalogue else None)
        if cfg.dry_run:
            return ScenarioRun(sc.name, {}, {"dry_run": self._dry_run(ctx), "timings": {}})
        loaded_before = scorer.weights_load_s
        t0 = time.perf_counter()
        if self.shard.active:
            # this process's share first; then rank 0 reads every rank's scores from the cache
            part = scheme.score_share(ctx, self.shard)
            counters = scorer.efficiency_counters()
            computed = group.gather(part.computed)  # also the barrier: every rank has committed
            if self.shard.sharded_only or not self.shard.is_main:
                return None
            out = scheme.score(replace(ctx, desc=ctx.desc + " (merge)"))
            # what the ranks computed, plus anything the merge pass had to compute itself
            out.computed += sum(computed)
            out.cached = max(0, out.cached - sum(computed))
        else:
            out = scheme.score(ctx)
            counters = scorer.efficiency_counters()
        lazy_load_s = scorer.weights_load_s - loaded_before  # weights load when a request first needs them
        score_s = time.perf_counter() - t0 - lazy_load_s
        model_load_s = self.model_load_s + lazy_load_s
        diag = scorer.diagnostics()
        binary = bool(diag.get("binary"))
        metrics = task.metrics(samples, out.scores, probabilities=scheme.probabilities and not binary,
                               bootstrap=cfg.bootstrap, seed=cfg.seed)
        metrics.update(out.metrics)  # scheme-level rates (e.g. the valid-output rate of generated rankings)
        meta = {
            "model_id": identity.get("model_id", self.spec.public_id),
            "model_revision": identity.get("revision"),
            "adapter": scorer.adapter_info,
            "backend": self.spec.backend,
            "task": task.name,
            "scheme": scheme.name,
            "seed": cfg.seed,
            "protocol_version": task.protocol_version,
            "template_id": self.template.id,
            "template_sha256": self.template.sha256,
            "chat_template": cfg.chat_template,
            "label_token_ids": None,
            "data_fingerprint": sc.fingerprint,
            "n": int(len(samples)),
            "limit": cfg.limit,
            "scores_binary": binary,
            "truncation": builder.stats.as_dict(),
            "scorer": diag,
            "identity": identity,
            "settings": cfg.public(),
            "timings": {"score_s": round(score_s, 3), "requests": out.requests, "cached": out.cached,
                        "computed": out.computed, "model_load_s": round(model_load_s, 3),
                        "weights_loaded": scorer.weights_loaded, **out.counts},
            "efficiency": measure(wall_s=time.perf_counter() - t_start, score_s=score_s,
                                  model_load_s=model_load_s, pairs=int(np.isfinite(out.scores).sum()),
                                  computed=out.computed, counters=counters, world_size=self.shard.world).as_dict(),
            "packages": package_versions(),
            "created": utc_now(),
            **out.meta,
        }
        log = task.sample_log(samples, out.scores)
        for k, v in out.shown.items():
            log[k] = v
        return ScenarioRun(sc.name, metrics, meta, samples=log)

    def _dry_run(self, ctx: SchemeContext) -> Dict:
        requests, keys = self.scheme.dry_run_requests(ctx)
        cached = ctx.cache.get_scores(keys) if keys else {}
        todo = [q for q, k in zip(requests, keys) if k not in cached] if keys else requests
        est = ctx.scorer.dry_run_estimate(todo)
        est["cached"] = len(cached)
        print(f"{ctx.scenario}: {est}", file=sys.stderr)
        return est

    def _write(self, run: ScenarioRun) -> None:
        record = RunResult(
            scenario=run.scenario, model=self.model, scheme=self.scheme.name, task=self.task.name,
            pipeline=self.scheme.pipeline or ("sft" if self.config.adapter else "zero-shot"), metrics=run.metrics,
            meta=run.meta,
            recbench_version=__version__, protocol_version=self.task.protocol_version,
        )
        path = self.results_path(run.scenario)
        record.write(path)
        run.path = path
        if self.config.log_samples and run.samples is not None:
            atomic_write_lines(path.with_name(f"{run.scenario}.samples.jsonl"), run.samples.to_dict("records"))

