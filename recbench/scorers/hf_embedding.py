"""Discriminative scoring with local models: embed user and item texts, compare vectors.

sentence-transformers folders use their own pooling; E5 gets its "query: "/"passage: "
prefixes; other encoders pool by mean (or CLS) and decoder LLMs by their last token.
The evaluation loop embeds each distinct text once; this class only turns texts into vectors.

`HFEmbeddingScorer.vectors` is the one forward pass from texts to pooled vectors: the scorer
runs it under inference mode, discriminative SFT (sft/train.py) with gradients through its
DDP wrapper, so a model is trained on exactly the inputs it is scored on
(tests/test_sft_discriminative.py pins trainer = scorer).

A plain transformers model's weights load when a text is first embedded (hf_common.LazyWeights):
its tokenizer and config describe it (identity, token counts, context), so a rerun served from
the cache loads none. A sentence-transformers folder, and a model with an adapter, 8/4-bit
quantization or a device map, loads at start.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

from ..errors import ModelError
from ..models import ModelSpec
from .base import EmbeddingScorer
from .hf_common import (
    LazyWeights,
    LoadOptions,
    context_limit,
    hub_copy_only,
    is_oom,
    load_pretrained,
    load_tokenizer,
    parse_batch_size,
    pick_device,
    quiet_transformers,
    torch_module,
)


MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")  # what a plain encoder is given


def st_features(st_model, texts: Sequence[str]) -> Dict:
    """A sentence-transformers model's input features for `texts`, built as its encode() builds
    them: the model's default prompt (config_sentence_transformers.json) prepended, with its
    length for a Pooling that leaves the prompt out, and tokenized by its Transformer module
    (truncated at its max_seq_length)."""
    name = getattr(st_model, "default_prompt_name", None)
    prompt = (getattr(st_model, "prompts", None) or {}).get(name) if name else None
    if hasattr(st_model, "preprocess"):
        return st_model.preprocess(list(texts), prompt=prompt)
    # older sentence-transformers: what their encode() does
    feats = st_model.tokenize([prompt + t for t in texts] if prompt else list(texts))
    if prompt:
        ids = st_model.tokenize([prompt]).get("input_ids")
        if ids is not None:
            feats["prompt_length"] = ids.shape[-1] - 1
    return feats


def pool(hidden, attention_mask, pooling: str):
    """One vector per row of right-padded hidden states: cls, last (real) token, or mean."""
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "last":
        last = attention_mask.sum(dim=1) - 1
        return hidden[torch_module().arange(hidden.shape[0], device=hidden.device), last]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class HFEmbeddingScorer(LazyWeights, EmbeddingScorer):
    backend = "hf"

    def __init__(self, spec: ModelSpec, options: Optional[LoadOptions] = None, *, batch_size="auto",
                 adapter: Optional[str] = None, model=None, tokenizer=None):
        self.spec = spec
        self.options = options or LoadOptions()
        self.torch = torch_module()
        self.batch_size, self.auto_batch = parse_batch_size(batch_size)
        if self.auto_batch:
            self.batch_size = 32
        self._model = model
        self.st_model = None
        self.adapter_info: Optional[Dict] = None
        if spec.kind == "sentence-transformers" and model is None:
            from ..errors import require

            st = require("sentence_transformers", "hf", "sentence-transformers models")
            self.device = pick_device(self.options.device)
            quiet_transformers()
            try:
                self.st_model = st.SentenceTransformer(
                    spec.model_id, device=self.device, trust_remote_code=self.options.trust_remote_code,
                    revision=spec.revision, local_files_only=hub_copy_only(spec))
            except (OSError, ValueError) as exc:
                raise ModelError(f"cannot load model '{spec.name}' ({spec.model_id}): {str(exc).splitlines()[0][:200]}") from None
            self.st_model.eval()
            self.tokenizer = self.st_model.tokenizer
            self.model = self.st_model[0].auto_model
            self._limit = int(self.st_model.max_seq_length or 512)
            if self.options.max_length:
                self._limit = min(self._limit, int(self.options.max_length))
            self.pooling = "sentence-transformers"
        else:
            self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(spec, self.options)
            if model is None:
                # the weights load when a text needs them; an adapter, quantization or a device
                # map needs them at once
                self.device = pick_device(self.options.device)
                if adapter or self.options.quantization or self.options.device_map:
                    self._load()
                elif not self._fits(self._auto_class()):
                    raise ModelError(f"model '{spec.name}' cannot serve the discriminative scheme: its "
                                     f"{type(self._config_holder().config).__name__} is not a model transformers "
                                     "can load as an encoder")
            else:
                self.device = str(next(model.parameters()).device)
            config = self._config_holder().config
            self._limit = context_limit(self._config_holder(), self.tokenizer, self.options, default=512)
            decoder = bool(getattr(config, "is_decoder", False)) or spec.kind == "causal" or (
                spec.kind is None and "ForCausalLM" in " ".join(getattr(config, "architectures", None) or []))
            self.pooling = spec.pooling or ("last" if decoder else "mean")
        if adapter:
            from ..sft.adapter import apply_adapter

            self.model, self.adapter_info = apply_adapter(self.model, adapter, self)
            if self.st_model is not None:
                self.st_model[0].auto_model = self.model
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.tokenizer.padding_side = "right"
        # Every text embedded is data (user history, item text): a special-token string in a
        # title ('[SEP]', '</s>') is tokenized as its characters. The tokenizer's own
        # [CLS]/[SEP]/BOS are still added. A default on the tokenizer, so sentence-transformers'
        # own tokenization (st_features) and the token counts of the prompt budget split them too.
        self.tokenizer.split_special_tokens = True

    @staticmethod
    def _auto_class():
        from transformers import AutoModel

        return AutoModel

    def _load_weights(self) -> None:
        """A plain transformers model's weights (LazyWeights); a sentence-transformers folder
        loads them in __init__."""
        self._model, self.device = load_pretrained(self._auto_class(), self.spec, self.options)

    @classmethod
    def from_run(cls, spec: ModelSpec, run) -> "HFEmbeddingScorer":
        return cls(spec, LoadOptions.from_run(run), batch_size=run.batch_size, adapter=run.adapter)

    def identity(self) -> Dict:
        return {
            "model": self.spec.name,
            "model_id": self.spec.public_id,
            "revision": self._revision(),
            "backend": self.backend,
            "pooling": self.pooling,
            "prefixes": [self.spec.query_prefix, self.spec.passage_prefix],
            "dtype": self._dtype_name(),
            "adapter": (self.adapter_info or {}).get("hash"),
        }

    def count_tokens(self, text: str) -> int:
        # special strings split (above); counting a long text before truncating it is deliberate:
        # no "longer than the maximum ... indexing errors" warning (verbose=False)
        return len(self.tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"])

    @property
    def context_budget(self) -> int:
        prefix = max(self.count_tokens(self.spec.query_prefix), self.count_tokens(self.spec.passage_prefix))
        return self._limit - prefix - 2

    def efficiency_counters(self) -> Dict:
        # a run served from the cache loads no weights: no parameter count (LazyWeights)
        parameters = (self._parameters() if self.st_model is None
                      else int(sum(p.numel() for p in self.st_model.parameters())))  # with its Dense head
        return {"device": str(self.device), "dtype": self._dtype_name(), "parameters": parameters}

    def diagnostics(self) -> Dict:
        return {"batch_size": self.batch_size, "device": str(self.device), "pooling": self.pooling}

    def prefixed(self, texts: Sequence[str], role: str) -> List[str]:
        """The texts as the model reads them: E5's "query: " (user) or "passage: " (item) first."""
        prefix = self.spec.query_prefix if role == "user" else self.spec.passage_prefix
        return [prefix + t for t in texts]

    def embed(self, texts: Sequence[str], role: str) -> np.ndarray:
        texts = self.prefixed(texts, role)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # length-sorted batches
        out = np.zeros((len(texts), 0), dtype=np.float32)
        vecs: List[np.ndarray] = []
        start = 0
        while start < len(order):
            idx = order[start : start + self.batch_size]
            try:
                vecs.append(self._embed_batch([texts[i] for i in idx]))
            except (RuntimeError, MemoryError) as exc:
                if not is_oom(exc) or not self.auto_batch or self.batch_size == 1:
                    if is_oom(exc):
                        raise ModelError(f"out of memory at batch size {self.batch_size}; use a smaller --batch-size") from None
                    raise
                self.batch_size //= 2
                continue
            start += len(idx)
        if vecs:
            stacked = np.concatenate(vecs, axis=0)
            out = np.empty_like(stacked)
            out[np.array(order)] = stacked
        return out

    def _embed_batch(self, texts: List[str]) -> np.ndarray:
        with self.torch.inference_mode():
            vec = self.vectors(texts)
        return vec.float().cpu().numpy()

    def vectors(self, texts: Sequence[str], forward=None):
        """The (len(texts), dim) tensor of pooled vectors of these (prefixed) texts, run as one
        padded batch; gradients flow unless the caller disables them. The scorer's and
        discriminative SFT's only way from texts to vectors.

        A sentence-transformers folder runs its own pipeline, as its encode() does: its input
        features (st_features) through all its modules (Transformer, Pooling, Dense, Normalize,
        ...); `forward` is the SentenceTransformer or a DDP wrapper of it. Otherwise the
        tokenizer (right padding, truncation at the context limit, special-token strings split)
        and `forward`, the transformers model or a wrapper of it, give hidden states, pooled in
        float32. By default `forward` is the model itself."""
        torch = self.torch
        if forward is None:
            forward = self.st_model if self.st_model is not None else self.model
        if self.st_model is not None:
            feats = st_features(self.st_model, texts)
            feats = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in feats.items()}
            vec = forward(feats)["sentence_embedding"]
            dim = getattr(self.st_model, "truncate_dim", None)  # as encode() cuts (never set by recbench)
            return vec[:, :dim] if dim else vec
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self._limit, return_tensors="pt")
        enc = {k: v.to(self.device) for k, v in enc.items() if k in MODEL_INPUTS}
        hidden = forward(**enc).last_hidden_state.float()
        return pool(hidden, enc["attention_mask"], self.pooling)

    def close(self) -> None:
        self.model = None
        self.st_model = None
