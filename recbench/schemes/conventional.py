"""`conventional`: conventional recommenders (PROTOCOL §11), scored like any other model.

No prompt: a request is a user's history item ids and candidate item ids (the task's user
groups as they are), so a baseline is measured on exactly the samples and with exactly the
metrics of the LLM rows beside it. Before scoring a scenario the scheme gives the scorer
what it learns from: the scenario's fine-tuning split (built with the same seed, so the test
users are the same and disjoint from it), split by user into train and valid, and for the
LLM-for-RS variants (`din+minilm`) the item-text vectors of an embedding model, computed
once per distinct item through the runner's score cache under the very keys the
discriminative scheme uses (a `zero-shot --model minilm` run and a `din+minilm` run share them).
Results go to the `baseline` pipeline.
"""

from __future__ import annotations

import hashlib
import sys
import time
from typing import TYPE_CHECKING, Any, Dict, Tuple, cast

import numpy as np

from ..errors import ConfigError, DataError
from ..progress import progress_bar
from ..prompts import Template
from .base import Scheme, SchemeContext, SchemeOutput
from .discriminative import DiscriminativeScheme

if TYPE_CHECKING:  # pragma: no cover
    from ..scorers.baseline import BaselineScorer

CATALOGUE_PAIRS = 1 << 20  # (user, item) scores per block when ranking a whole catalogue
VALID_NEGATIVES = 20  # negatives beside each valid user's last positive (tasks with sequence rows)
NO_PROMPT_TEXT = "{history}\n{candidate}"  # placeholder: conventional models read item ids
NO_PROMPT = Template(id="default", scheme="conventional", text=NO_PROMPT_TEXT,
                     sha256=hashlib.sha256(b"conventional: item ids, no prompt").hexdigest())


class ConventionalScheme(Scheme):
    name = "conventional"
    ranks_catalogue = True
    help = "conventional recommenders (baselines): item-id histories and candidates, no prompt"
    scorer_kind = "recommender"
    probabilities = False
    template_layout = "prompt"
    pipeline = "baseline"

    def template(self, name_or_path):
        if name_or_path:
            raise ConfigError("--template applies to prompt-based schemes; conventional models read item ids")
        return NO_PROMPT

    def check(self, cfg) -> None:
        super().check(cfg)
        from ..baselines import BaselineConfig

        BaselineConfig.from_any(cfg.baseline)
        if cfg.adapter:
            raise ConfigError("--adapter applies to LLMs; conventional models are trained by `recbench baseline`")

    def score_share(self, ctx: SchemeContext, shard) -> SchemeOutput:
        """Training is one process's job and scores are not cached: under torchrun the other
        ranks do nothing and rank 0 trains (or reuses) the model and scores every user."""
        return SchemeOutput(scores=np.full(ctx.num_scores, np.nan), requests=0, cached=0, computed=0)

    def dry_run_requests(self, ctx: SchemeContext):
        return [], []

    # -- scoring -------------------------------------------------------------------------
    def score(self, ctx: SchemeContext) -> SchemeOutput:
        from ..baselines.base import FitData
        from ..baselines.data import Vocab, encode_sequences, pairs_from_frame, pairs_from_groups, pairs_from_sequences
        from ..scorers.baseline import stderr_say
        from ..tasks import get_task

        scorer, cfg = cast("BaselineScorer", ctx.scorer), ctx.config
        task = get_task(cfg.task)
        say = stderr_say(cfg.progress)
        ft, num_finetune = self._finetune(ctx)
        seed = scorer.config.train_seed if scorer.config.train_seed is not None else cfg.seed
        payload = {"scenario": ctx.scenario, "task": cfg.task, "seed": seed, "num_finetune": num_finetune,
                   "finetune_fingerprint": ft.info.get("finetune_fingerprint"), "test_fingerprint": ft.fingerprint}
        embedded = {"computed": 0}

        def fit_data() -> FitData:
            train_rows, valid_rows = ft.finetune_split("train"), ft.finetune_split("valid")
            if train_rows.empty:
                raise DataError(f"{ctx.scenario}: the fine-tuning split has no train users; raise --num-finetune")
            vocab = Vocab.build(ft.items["item_id"])
            train_seqs = task.training_sequences(train_rows)
            valid_df = task.training_pairs(valid_rows)
            if valid_df is None:  # the task's rows are sequences: draw labelled pairs
                valid_df = pairs_from_sequences(task.training_sequences(valid_rows), list(vocab.items),
                                                negatives=VALID_NEGATIVES, seed=seed, last_only=True)
            vectors = None
            if scorer.spec.item_embeddings:
                from ..baselines.text import item_table

                by_item, embedded["computed"] = self.item_vectors(ctx, scorer.spec.item_embeddings, ft.item_text())
                vectors = item_table(vocab, by_item, scorer.config.embedding_dim)
            # pad to the longest history there is (up to --max-history), the same at training and
            # scoring: position-aware models (BST) see the most recent item at the same position
            longest = max((len(h) for df in (ft.finetune, ft.test) for h in df["history"]), default=1)
            width = max(1, min(scorer.config.max_history, longest))

            def train_pairs():
                """Built only for the models that read pairs (not SASRec/GRU4Rec): on seqrec
                they are every position of every sequence times (1 + negatives)."""
                train_df = task.training_pairs(train_rows)
                if train_df is None:
                    train_df = pairs_from_sequences(train_seqs, list(vocab.items), negatives=scorer.config.negatives,
                                                    seed=seed)
                return train_df, pairs_from_frame(train_df, vocab, width)

            return FitData(vocab=vocab, valid=pairs_from_frame(valid_df, vocab, width), history_width=width,
                           build_train=train_pairs, sequences=encode_sequences(train_seqs, vocab, width + 1),
                           item_vectors=vectors, seed=seed, progress=cfg.progress, desc=ctx.desc,
                           validate=_valid_gauc)

        record = scorer.prepare_model(ctx.scenario, payload, fit_data, say)
        t0 = time.perf_counter()
        if ctx.catalogue is not None:
            scores, n = self._rank_catalogue(ctx, scorer)
        else:
            pairs, slots = pairs_from_groups(ctx.groups, scorer.vocab, scorer.history_width)
            scores = np.zeros(ctx.num_scores, dtype=np.float64)
            scores[slots] = scorer.score_pairs(pairs)
            n = len(pairs)
        predict_s = time.perf_counter() - t0
        facts: Dict[str, Any] = {k: record.get(k) for k in ("train_pairs", "train_sequences", "valid_pairs", "train_users", "valid_users",
                                                             "items", "history_width", "library", "library_version",
                                                             "text_dim") if k in record}
        meta: Dict[str, Any] = {
            "item_embeddings": scorer.spec.item_embeddings,
            "baseline": {
                "architecture": scorer.architecture, "item_embeddings": scorer.spec.item_embeddings,
                "trained_model": str(scorer.folder), "reused": record.get("reused", False),
                "config_hash": record.get("config_hash"), "seed": seed, "num_finetune": num_finetune,
                "finetune_fingerprint": payload["finetune_fingerprint"], "settings": record.get("settings"),
                "train_s": record.get("train_s"), "fit": record.get("fit"), "device": record.get("device"),
                **facts,
                "predict_s": round(predict_s, 4), "pairs_per_s": round(n / predict_s, 1) if predict_s > 0 else None,
            },
        }
        counts = {"computed_embeddings": int(embedded["computed"])}
        return SchemeOutput(scores=scores, requests=n, cached=0, computed=n, meta=meta, counts=counts)

    def _rank_catalogue(self, ctx: SchemeContext, scorer: "BaselineScorer") -> Tuple[np.ndarray, int]:
        """Every catalogue item scored for blocks of users (one matrix product per block for
        models with a user vector); the task's reduction keeps only the targets' ranks."""
        cat = ctx.catalogue
        assert cat is not None and scorer.recommender is not None
        items = list(cat.items)
        groups = ctx.groups
        user_idx = np.fromiter((cat.user_of(g) for g in groups), dtype=np.int64, count=len(groups))
        ranks = np.full(cat.num_users, np.nan)
        step = max(1, CATALOGUE_PAIRS // max(1, len(items)))
        bar = progress_bar(len(groups), f"{ctx.desc} catalogue", ctx.config.progress, unit="user")
        for start in range(0, len(groups), step):
            block = groups[start:start + step]
            scores = scorer.recommender.score_matrix([g.user_id for g in block], [g.history for g in block], items,
                                                     scorer.history_width)
            rows = user_idx[start:start + step]
            ranks[rows] = cat.reduce(rows.tolist(), scores)
            bar.update(len(block))
        bar.close()
        return ranks, len(groups) * len(items)

    # -- data ----------------------------------------------------------------------------
    def _finetune(self, ctx: SchemeContext):
        """The scenario rebuilt with a fine-tuning split; its test samples must be the ones scored."""
        from ..baselines.config import DEFAULT_FINETUNE
        from ..scenarios import get_source
        from ..tasks import get_task

        cfg = ctx.config
        n = cast("BaselineScorer", ctx.scorer).config.num_finetune or get_source(ctx.scenario).default_num_finetune or DEFAULT_FINETUNE
        progress = (lambda m: print(m, file=sys.stderr)) if cfg.progress else None
        ft = get_task(cfg.task).load_finetune(ctx.scenario, cfg, n, progress)
        if ctx.fingerprint and ft.fingerprint != ctx.fingerprint:
            raise DataError(f"{ctx.scenario}: the build with a fine-tuning split has other test samples than the "
                            f"scored ones (fingerprint {ft.fingerprint[:12]} vs {ctx.fingerprint[:12]}); "
                            "rerun with --no-cache")
        if ft.finetune.empty:
            raise DataError(f"{ctx.scenario}: no fine-tuning users left after the test users; lower --num-test")
        return ft, n

    def item_vectors(self, ctx: SchemeContext, model: str, texts: Dict[str, str]) -> Tuple[Dict[str, np.ndarray], int]:
        """item id -> vector of its text under the discriminative scheme's item template, through
        the runner's cache (same namespace and keys as a discriminative run of that model)."""
        from ..cache import namespace
        from ..models import resolve_model
        from ..prompts import PromptBuilder
        from ..scorers import make_scorer

        cfg = ctx.config
        spec = resolve_model(model, revision=cfg.revision)
        scheme = DiscriminativeScheme()  # whose item texts and vector-cache keys the text features reuse
        template = scheme.template(None)
        embedder = make_scorer(spec, cfg, ability=scheme.scorer_kind)
        try:
            builder = PromptBuilder(template, ctx.builder.item_noun, embedder.count_tokens, embedder.context_budget)
            scheme.prepare(embedder, builder)
            ns = namespace(embedder.identity(), scheme=scheme.name, template=template.sha256)
            item_text = {i: builder.item_text(t) for i, t in texts.items()}
            distinct = list(dict.fromkeys(item_text.values()))
            sub = SchemeContext(scenario=ctx.scenario, groups=[], num_scores=0, texts=texts, scorer=embedder,
                                cache=ctx.cache, namespace=ns, builder=builder, config=cfg,
                                desc=f"{ctx.scenario} [{spec.name}]")
            matrix, computed = scheme.embed_distinct(sub, "item", distinct)
        finally:
            embedder.close()
        row = {t: k for k, t in enumerate(distinct)}
        return {i: matrix[row[t]] for i, t in item_text.items()}, computed


def _valid_gauc(pairs, scores) -> float:
    from ..metrics import compute_metrics

    if not len(pairs):
        return float("nan")
    return float(compute_metrics(pairs.users, pairs.label.astype(np.int64), scores, probabilities=False)["gauc"])
