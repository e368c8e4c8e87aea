"""Generative scoring with local Hugging Face models: P(Yes) from next-token logits.

Causal LMs (Llama, Mistral, Qwen, Phi, OPT, GGUF files through transformers) score the token
after the prompt; BERT-style masked LMs score a [MASK] placed after the answer cue.

Speed: requests are length-sorted and batched; the candidates of one user share the prompt
up to their candidate text, so that prefix is run once and its KV cache is reused for all of
them (`prefix_reuse`). Both paths give the same P(Yes) within float error: the prefix path is
used only when the tokenization of the full prompt starts with the prefix's tokens.
"""

from __future__ import annotations

import copy
import inspect
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import ModelError
from ..models import ModelSpec
from ..prompts import PromptRequest
from .base import GenerativeScorer, OnResult
from .hf_batch import answer_logits
from .hf_common import (
    LazyWeights,
    LoadOptions,
    context_limit,
    count_plain,
    encode_plain,
    is_oom,
    load_pretrained,
    load_tokenizer,
    parse_batch_size,
    pick_device,
    special_pattern,
    torch_module,
)

LABEL_VARIANTS = ((" Yes", " No"), ("Yes", "No"), (" YES", " NO"), ("YES", "NO"), (" yes", " no"), ("yes", "no"))


@dataclass(frozen=True)
class LabelTokens:
    yes_id: int
    no_id: int
    yes_text: str
    no_text: str
    pieces: int  # 1 when each label is a single token; else the first piece is scored

    def as_dict(self) -> Dict:
        return {"yes": self.yes_id, "no": self.no_id, "yes_text": self.yes_text, "no_text": self.no_text,
                "pieces": self.pieces}


def derive_label_tokens(tokenizer, prompt: str, masked: bool = False) -> LabelTokens:
    """The Yes/No token ids for the exact text that follows `prompt` (PROTOCOL §5).

    Tries the variants with and without a leading space, title and upper case, preferring
    the natural one (a space after ':', none after a newline), and single-token labels.
    Refuses labels that map to the unknown token or share their first piece."""
    unk = getattr(tokenizer, "unk_token_id", None)
    variants = LABEL_VARIANTS
    if prompt.endswith(("\n", " ")) or masked:
        variants = tuple(v for v in variants if not v[0].startswith(" ")) + tuple(v for v in variants if v[0].startswith(" "))
    base = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    found: List[Tuple[int, int, int, str, str]] = []
    for yes, no in variants:
        ids = []
        for word in (yes, no):
            if masked:
                cont = tokenizer(word.strip(), add_special_tokens=False)["input_ids"]
            else:
                full = tokenizer(prompt + word, add_special_tokens=False)["input_ids"]
                if full[: len(base)] != base:
                    cont = tokenizer(word, add_special_tokens=False)["input_ids"]
                else:
                    cont = full[len(base):]
            ids.append(cont)
        y, n = ids
        if not y or not n or (unk is not None and (y[0] == unk or n[0] == unk)) or y[0] == n[0]:
            continue
        found.append((max(len(y), len(n)), y[0], n[0], yes, no))
        if len(y) == 1 and len(n) == 1:
            return LabelTokens(y[0], n[0], yes, no, 1)
    if found:
        pieces, y, n, yes, no = found[0]
        return LabelTokens(y, n, yes, no, pieces)
    raise ModelError(
        "the model's tokenizer cannot produce distinct Yes/No label tokens (unknown token or shared first "
        "piece); it cannot serve the generative scheme, try --scheme discriminative"
    )


def _output_cache(out):
    """The KV cache a forward pass returned: `cache` in transformers 5.x (reading the old
    `past_key_values` name there warns), `past_key_values` before."""
    past = getattr(out, "cache", None)
    return past if past is not None else out.past_key_values


def chat_wrap(tokenizer, text: str) -> str:
    """One user turn in the model's chat template, ending with the assistant's header."""
    return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                         add_generation_prompt=True)


def render_chat(tokenizer, request: PromptRequest, model_name: str) -> Tuple[PromptRequest, List[Tuple[int, int]]]:
    """A causal prompt wrapped in the chat template, split where the request was (shared prefix,
    candidate suffix), and the spans of the prompt's own text in it (the data, tokenised as
    plain text). Every backend that renders chat prompts locally uses this, so all send the
    same token ids."""
    content = request.prefix + request.suffix
    full = chat_wrap(tokenizer, content)
    cut = full.find(request.prefix)
    if cut >= 0 and full.startswith(content, cut):
        spans = [(cut, cut + len(content))]
    else:  # a chat template that edits the text: find what it kept verbatim
        after = cut + len(request.prefix) if cut >= 0 else 0
        tail = full.find(request.suffix, after)
        spans = [(cut, after)] if cut >= 0 else []
        spans += [(tail, tail + len(request.suffix))] if tail >= 0 else []
        if cut < 0 or tail < 0:
            pat = special_pattern(tokenizer)
            if pat is not None and pat.search(content):
                raise ModelError(
                    f"the chat template of model '{model_name}' rewrites the prompt, so item text holding "
                    "special-token strings cannot be kept plain text; run with --no-chat-template")
    if cut < 0:
        return PromptRequest("", full), spans
    return PromptRequest(full[: cut + len(request.prefix)], full[cut + len(request.prefix):]), spans


class HFGenerativeScorer(LazyWeights, GenerativeScorer):
    backend = "hf"

    def __init__(
        self,
        spec: ModelSpec,
        options: Optional[LoadOptions] = None,
        *,
        batch_size="auto",
        chat_template: bool = False,
        prefix_reuse: bool = True,
        adapter: Optional[str] = None,
        model=None,
        tokenizer=None,
        progress: bool = True,
    ):
        self.spec = spec
        self.options = options or LoadOptions()
        self.torch = torch_module()
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(spec, self.options)
        self.masked = spec.kind == "masked"
        self._progress = progress
        self._model = model
        if model is None:
            from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

            self._auto = AutoModelForMaskedLM if self.masked else AutoModelForCausalLM
            self.device = pick_device(self.options.device)
            # the weights load when a request needs them: a rerun served from the score cache
            # never loads them (adapters and quantized loading need the model at once)
            if adapter or self.options.quantization or self.options.device_map:
                self._load()
            else:
                self._check_architecture()
        else:
            self.device = str(next(model.parameters()).device)
            self._inspect_forward()
        self.chat = bool(chat_template)
        if self.chat and not getattr(self.tokenizer, "chat_template", None):
            raise ModelError(f"--chat-template asked for, but model '{spec.name}' has no chat template")
        self.adapter_info: Optional[Dict] = None
        if adapter:
            from ..sft.adapter import apply_adapter

            self.model, self.adapter_info = apply_adapter(self.model, adapter, self)
        self.prefix_reuse = prefix_reuse and not self.masked
        self.batch_size, self.auto_batch = parse_batch_size(batch_size)
        if self.auto_batch and str(self.device).startswith("cuda"):
            self.batch_size = 64
        self._limit = context_limit(self._config_holder(), self.tokenizer, self.options)
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
        self.pad_id = int(pad)
        self.labels = derive_label_tokens(self.tokenizer, self._answer_probe(), masked=self.masked)
        self._mass_sum = 0.0
        self._mass_n = 0
        self._tokens = {"in_prompts": 0, "processed": 0}
        self._prefix_cache: "OrderedDict[Tuple[int, ...], object]" = OrderedDict()

    @classmethod
    def from_run(cls, spec: ModelSpec, run) -> "HFGenerativeScorer":
        return cls(spec, LoadOptions.from_run(run), batch_size=run.batch_size, chat_template=run.chat_template,
                   prefix_reuse=run.prefix_reuse, adapter=run.adapter, progress=run.progress)

    # -- the weights, loaded when first needed (LazyWeights) --------------------------------
    def _load_weights(self) -> None:
        try:
            self._model, self.device = load_pretrained(self._auto, self.spec, self.options, progress=self._progress)
        except ValueError as exc:  # e.g. an encoder-only config for a causal LM
            raise ModelError(f"model '{self.spec.name}' cannot serve the generative scheme: {exc}") from None
        self._inspect_forward()

    def _inspect_forward(self) -> None:
        params = inspect.signature(self._model.forward).parameters
        self._takes_keep = "logits_to_keep" in params
        self._takes_pos = "position_ids" in params
        # transformers 5.x names the KV cache argument `cache` (`past_key_values` warns, then goes)
        self._cache_arg = "cache" if "cache" in params else "past_key_values"

    def _check_architecture(self) -> None:
        """Refuse at once a config this kind of model cannot load (e.g. an encoder for a causal LM)."""
        if not self._fits(self._auto):
            raise ModelError(f"model '{self.spec.name}' cannot serve the generative scheme: its "
                             f"{type(self._config_holder().config).__name__} is not a "
                             f"{'masked' if self.masked else 'causal'} LM")

    # -- description ----------------------------------------------------------------------
    def identity(self) -> Dict:
        return {
            "model": self.spec.name,
            "model_id": self.spec.public_id,
            "revision": self._revision(),
            "backend": self.backend,
            "kind": "masked" if self.masked else "causal",
            "dtype": self._dtype_name(),
            "chat_template": self.chat,
            "labels": self.labels.as_dict(),
            "adapter": (self.adapter_info or {}).get("hash"),
        }

    def label_info(self) -> Dict:
        return self.labels.as_dict()

    def count_tokens(self, text: str) -> int:
        return count_plain(self.tokenizer, text)  # item text counts as the plain text it is sent as

    @property
    def context_budget(self) -> int:
        # room for the chat wrapper, the [MASK] and special tokens
        return self._limit - (self._chat_overhead() if self.chat else 0) - 4

    def begin_scenario(self) -> None:
        self._tokens = {"in_prompts": 0, "processed": 0}

    def efficiency_counters(self) -> Dict:
        # a run served from the cache loads no weights: no parameter count
        return {"device": str(self.device), "dtype": self._dtype_name(), "parameters": self._parameters(),
                "tokens_in_prompts": self._tokens["in_prompts"], "tokens_processed": self._tokens["processed"]}

    def diagnostics(self) -> Dict:
        return {"batch_size": self.batch_size, "prefix_reuse": self.prefix_reuse, "device": str(self.device)}

    # -- rendering -----------------------------------------------------------------------
    def _chat_overhead(self) -> int:
        return len(self.tokenizer(chat_wrap(self.tokenizer, "x"), add_special_tokens=False)["input_ids"])

    def _answer_probe(self) -> str:
        probe = self.render(PromptRequest("User behavior sequence:\n(1) A\n", "Candidate item: B\nAnswer (Yes/No):"))
        return probe.text

    def render(self, request: PromptRequest) -> PromptRequest:
        return self._rendered(request)[0]

    def _rendered(self, request: PromptRequest) -> Tuple[PromptRequest, List[Tuple[int, int]]]:
        """The request as the model sees it, and the spans of the prompt's own text in it
        (the data: everything but the chat wrapper or the appended mask)."""
        content = request.prefix + request.suffix
        if self.masked:
            mask = self.tokenizer.mask_token
            if mask is None:
                raise ModelError(f"model '{self.spec.name}' is a masked LM without a mask token")
            return PromptRequest(request.prefix, request.suffix + " " + mask), [(0, len(content))]
        if not self.chat:
            return request, [(0, len(content))]
        return render_chat(self.tokenizer, request, self.spec.name)

    # -- scoring -------------------------------------------------------------------------
    def _encode(self, text: str, data: Sequence[Tuple[int, int]] = ()) -> List[int]:
        """Token ids of rendered text whose spans `data` are the prompt's own text (item
        titles: plain text); chat templates carry their own special tokens."""
        return encode_plain(self.tokenizer, text, data, add_special_tokens=not self.chat)

    def encode(self, request: PromptRequest) -> List[int]:
        """The token ids the model is given for a request (the SFT data uses this too, so
        training inputs are token-for-token the evaluation's)."""
        rendered, data = self._rendered(request)
        return self._encode(rendered.text, data)

    def set_answer_cue(self, probe: PromptRequest) -> None:
        self.labels = derive_label_tokens(self.tokenizer, self.render(probe).text, masked=self.masked)

    def score_detailed(self, requests: Sequence[PromptRequest],
                       on_result: Optional[OnResult] = None) -> Tuple[List[float], List[Dict]]:
        pairs = [self._rendered(r) for r in requests]
        rendered = [r for r, _ in pairs]
        full_ids = [self._encode(r.text, data) for r, data in pairs]
        too_long = [i for i, ids in enumerate(full_ids) if len(ids) > self._limit]
        if too_long:
            raise ModelError(
                f"a prompt of {len(full_ids[too_long[0]])} tokens exceeds the model's context of {self._limit}; "
                "this is a truncation bug, please report it"
            )
        self._tokens["in_prompts"] += sum(len(ids) for ids in full_ids)
        out: List[Optional[Tuple[float, float]]] = [None] * len(requests)
        plain: List[int] = []
        if self.prefix_reuse:
            groups: "OrderedDict[str, List[int]]" = OrderedDict()
            for i, r in enumerate(rendered):
                groups.setdefault(r.prefix, []).append(i)
            for prefix, idx in groups.items():
                if len(idx) < 2 or not prefix:
                    plain.extend(idx)
                    continue
                # the prefix's data spans are the same for every member (same wrapper head)
                spans = [(a, min(b, len(prefix))) for a, b in pairs[idx[0]][1] if a < len(prefix)]
                prefix_ids = self._encode(prefix, spans)
                ok = [i for i in idx if full_ids[i][: len(prefix_ids)] == prefix_ids and len(full_ids[i]) > len(prefix_ids)]
                plain.extend(i for i in idx if i not in set(ok))
                if ok:
                    suffixes = [full_ids[i][len(prefix_ids):] for i in ok]
                    self._tokens["processed"] += len(prefix_ids) + sum(len(x) for x in suffixes)
                    for i, res in zip(ok, self._run(self._score_suffixes, prefix_ids, suffixes)):
                        out[i] = res
        else:
            plain = list(range(len(requests)))
        if plain:
            order = sorted(plain, key=lambda i: len(full_ids[i]))  # length-sorted batches
            self._tokens["processed"] += sum(len(full_ids[i]) for i in order)
            for i, res in zip(order, self._run(self._score_full, None, [full_ids[i] for i in order])):
                out[i] = res
        scores, extras = [], []
        for p_yes, mass in out:  # type: ignore[misc]
            scores.append(p_yes)
            extras.append({"mass": mass})
            self._mass_sum += mass
            self._mass_n += 1
        return scores, extras

    def _run(self, fn, prefix_ids, seqs: List[List[int]]) -> List[Tuple[float, float]]:
        """Batches of `seqs` through fn, halving the batch on out-of-memory when auto."""
        if seqs and self._model is None:
            self._load()
        results: List[Tuple[float, float]] = []
        start = 0
        while start < len(seqs):
            batch = seqs[start : start + self.batch_size]
            try:
                results.extend(fn(prefix_ids, batch))
            except (RuntimeError, MemoryError) as exc:
                if not is_oom(exc):
                    raise
                if self.torch.cuda.is_available():
                    self.torch.cuda.empty_cache()
                if not self.auto_batch or self.batch_size == 1:
                    raise ModelError(
                        f"out of memory at batch size {self.batch_size}; use a smaller --batch-size, "
                        "a shorter --max-length or --quantization 4bit"
                    ) from None
                self.batch_size = max(1, self.batch_size // 2)
                continue
            start += len(batch)
        return results

    def _two_way(self, logits) -> List[Tuple[float, float]]:
        """P(Yes) over the two label logits, and P(Yes)+P(No) over the whole vocabulary."""
        torch = self.torch
        logits = logits.float()
        pair = torch.stack([logits[:, self.labels.yes_id], logits[:, self.labels.no_id]], dim=1)
        p_yes = torch.softmax(pair, dim=1)[:, 0]
        mass = torch.logsumexp(pair, dim=1) - torch.logsumexp(logits, dim=1)
        return [(float(p), float(math.exp(m))) for p, m in zip(p_yes.tolist(), mass.tolist())]

    def _score_full(self, _prefix, batch: List[List[int]]) -> List[Tuple[float, float]]:
        torch = self.torch
        with torch.inference_mode():
            logits = answer_logits(torch, self.model, batch, self.pad_id, self.device, masked=self.masked,
                                   mask_token_id=self.tokenizer.mask_token_id, takes_pos=self._takes_pos,
                                   takes_keep=self._takes_keep)
        return self._two_way(logits)

    def _prefix_state(self, prefix_ids: List[int]):
        key = tuple(prefix_ids)
        if key in self._prefix_cache:
            self._prefix_cache.move_to_end(key)
            return self._prefix_cache[key]
        torch = self.torch
        ids = torch.tensor([prefix_ids], device=self.device)
        kwargs = {"logits_to_keep": 1} if self._takes_keep else {}  # the prefix's logits are never read
        with torch.inference_mode():
            out = self.model(input_ids=ids, use_cache=True, **kwargs)
        past = _output_cache(out)
        self._prefix_cache[key] = past
        while len(self._prefix_cache) > 2:
            self._prefix_cache.popitem(last=False)
        return past

    def _expanded_cache(self, past, batch: int):
        """A cache holding the prefix for `batch` rows without copying it: the rows are
        broadcast views (expand) of the one prefix; only the suffixes' own K/V get written.
        Falls back to a deep copy for cache types that cannot be rebuilt from tensors."""
        layers = getattr(past, "layers", None)
        if layers and all(hasattr(layer, "keys") and getattr(layer, "keys", None) is not None for layer in layers):
            try:
                from transformers import DynamicCache

                data = [(layer.keys.expand(batch, -1, -1, -1), layer.values.expand(batch, -1, -1, -1))
                        for layer in layers]
                return DynamicCache(ddp_cache_data=data, config=self.model.config)
            except (TypeError, ValueError, RuntimeError, AttributeError):
                pass
        past = copy.deepcopy(past)
        if batch > 1:
            past.batch_repeat_interleave(batch)
        return past

    def _score_suffixes(self, prefix_ids: List[int], batch: List[List[int]]) -> List[Tuple[float, float]]:
        torch = self.torch
        past = self._expanded_cache(self._prefix_state(prefix_ids), len(batch))
        plen = len(prefix_ids)
        width = max(len(s) for s in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        smask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, seq in enumerate(batch):
            ids[r, width - len(seq):] = torch.tensor(seq)
            smask[r, width - len(seq):] = 1
        mask = torch.cat([torch.ones((len(batch), plen), dtype=torch.long), smask], dim=1)
        pos = plen + (smask.cumsum(dim=1) - 1).clamp(min=0)
        kwargs = {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device),
                  self._cache_arg: past, "use_cache": True}
        if self._takes_pos:
            kwargs["position_ids"] = pos.to(self.device)
        if self._takes_keep:
            kwargs["logits_to_keep"] = 1
        with torch.inference_mode():
            logits = self.model(**kwargs).logits
        return self._two_way(logits[:, -1, :])

    def mean_label_mass(self) -> Optional[float]:
        return self._mass_sum / self._mass_n if self._mass_n else None

    def close(self) -> None:
        self._prefix_cache.clear()
        self._model = None
