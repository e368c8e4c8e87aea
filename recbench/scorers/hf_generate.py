"""Greedy text generation with local Hugging Face causal LMs (the `generation` ability).

Loading is the generative scorer's (hf_common: dtype, device, GGUF files through
transformers, quantization, adapters), and so is its laziness: the tokenizer, config and
generation config describe the model (identity, prompts, EOS tokens) and the weights load
when a prompt is first generated for, so a rerun served from the cache loads none. Prompts
go through the model's chat template when it has one (unless --no-chat-template;
--chat-template insists on one). Decoding is greedy with an explicit generation config, so a
model's own sampling defaults (temperature, top-p, repetition penalty) never change an
answer. Prompts are length-sorted and batched with left padding; an out-of-memory error
halves an automatic batch size. Item text is data: a title holding a special-token string
reaches the model as those characters (hf_common.encode_plain), only the chat template's own
markers are special tokens.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import ModelError
from ..models import ModelSpec
from .base import OnText, TextGenerator
from .hf_batch import pad_batch
from .hf_common import (
    LazyWeights,
    LoadOptions,
    context_limit,
    count_plain,
    encode_plain,
    hub_copy_only,
    is_oom,
    load_pretrained,
    load_tokenizer,
    parse_batch_size,
    pick_device,
    special_pattern,
    torch_module,
)

NOT_CAUSAL = ("masked", "encoder", "sentence-transformers")


def render_generation(tokenizer, prompt: str, chat: bool, model_name: str) -> Tuple[str, List[Tuple[int, int]]]:
    """The text a generating model sees for `prompt` (one user turn of its chat template when
    `chat`), and the span of the prompt's own text in it (the data). Shared with vLLM."""
    if not chat:
        return prompt, [(0, len(prompt))]
    full = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)
    at = full.find(prompt)
    if at < 0:  # a chat template that edits the text
        pat = special_pattern(tokenizer)
        if pat is not None and pat.search(prompt):
            raise ModelError(f"the chat template of model '{model_name}' rewrites the prompt, so item text "
                             "holding special-token strings cannot be kept plain text; run with --no-chat-template")
        return full, []
    return full, [(at, at + len(prompt))]


def token_ids(*values) -> List[int]:
    """Distinct token ids, in order, from EOS settings (each an int, a list of ints or None)."""
    ids: List[int] = []
    for value in values:
        for v in (value if isinstance(value, (list, tuple)) else [value]):
            if isinstance(v, int) and v not in ids:
                ids.append(v)
    return ids


class GenerationPrompts:
    """How a generating backend shows a model its prompts, shared by the HF and vLLM
    generators so both send the same token ids: the chat template where it applies, item
    text kept plain text, and the context check. Needs `tokenizer`, `chat`, `spec`, `_limit`."""

    tokenizer: Any
    chat: bool
    spec: ModelSpec
    _limit: int

    @property
    def chat_applied(self) -> Optional[bool]:
        return self.chat

    def count_tokens(self, text: str) -> int:
        return count_plain(self.tokenizer, text)  # item text counts as the plain text it is sent as

    @property
    def context_budget(self) -> int:
        """Prompt tokens that may be sent; the scheme keeps room for the answer below this."""
        overhead = len(self._encode(*self._rendered("x"))) if self.chat else 0
        return self._limit - overhead - 4

    def render(self, prompt: str) -> str:
        return self._rendered(prompt)[0]

    def _rendered(self, prompt: str) -> Tuple[str, List[Tuple[int, int]]]:
        return render_generation(self.tokenizer, prompt, self.chat, self.spec.name)

    def _encode(self, text: str, data: Sequence[Tuple[int, int]] = ()) -> List[int]:
        # chat templates carry their own special tokens; the data spans are plain text
        return encode_plain(self.tokenizer, text, data, add_special_tokens=not self.chat)

    def prompt_ids(self, prompts: Sequence[str], max_new_tokens: int) -> List[List[int]]:
        """The token ids of each prompt as the model sees it, each checked to leave room for the answer."""
        ids = [self._encode(*self._rendered(p)) for p in prompts]
        for seq in ids:
            if len(seq) + max_new_tokens > self._limit:
                raise ModelError(
                    f"a prompt of {len(seq)} tokens plus {max_new_tokens} answer tokens exceeds the model's context "
                    f"of {self._limit}; this is a truncation bug, please report it")
        return ids


def generation_config(spec: ModelSpec, config):
    """The generation config `from_pretrained` gives a causal LM, read without its weights: the
    folder's generation_config.json, else one made from config.json, else from the model
    config (always so for a GGUF file, whose generation settings transformers does not read)."""
    from transformers import GenerationConfig

    try:
        made = GenerationConfig.from_model_config(config)
    except NotImplementedError:
        made = GenerationConfig()
    if spec.gguf_file:
        return made
    kw: Dict[str, Any] = {"revision": spec.revision, "local_files_only": hub_copy_only(spec)}
    try:
        return GenerationConfig.from_pretrained(spec.model_id, **kw)
    except OSError:
        pass
    try:
        return GenerationConfig.from_pretrained(spec.model_id, config_file_name="config.json",
                                                _from_model_config=True, **kw)
    except OSError:
        return made


class HFTextGenerator(LazyWeights, GenerationPrompts, TextGenerator):
    backend = "hf"

    def __init__(self, spec: ModelSpec, options: Optional[LoadOptions] = None, *, batch_size="auto",
                 chat_template: Optional[bool] = None, adapter: Optional[str] = None, model=None, tokenizer=None):
        if spec.kind in NOT_CAUSAL:
            raise ModelError(f"model '{spec.name}' is a {spec.kind} model and cannot generate text; "
                             "the listwise scheme needs a causal LM")
        self.spec = spec
        self.options = options or LoadOptions()
        self.torch = torch_module()
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(spec, self.options)
        self._model = model
        if model is None:
            self.device = pick_device(self.options.device)
            # the weights load when a prompt needs them: a rerun served from the cache never loads
            # them (adapters and quantized or device-mapped loading need the model at once)
            if adapter or self.options.quantization or self.options.device_map:
                self._load()
            elif not self._fits(self._causal_class()):
                raise ModelError(f"model '{spec.name}' cannot generate text (not a causal LM): its "
                                 f"{type(self._config_holder().config).__name__} is not a causal LM")
        else:
            self.device = str(next(model.parameters()).device)
        has_chat = bool(getattr(self.tokenizer, "chat_template", None))
        if chat_template and not has_chat:
            raise ModelError(f"--chat-template asked for, but model '{spec.name}' has no chat template")
        self.chat = has_chat if chat_template is None else bool(chat_template)
        self.adapter_info: Optional[Dict] = None
        if adapter:
            from ..sft.adapter import apply_adapter

            self.model, self.adapter_info = apply_adapter(self.model, adapter, self)
        self.batch_size, self.auto_batch = parse_batch_size(batch_size)
        if self.auto_batch and not str(self.device).startswith("cuda"):
            self.batch_size = 8  # long prompts on a CPU: small batches waste less on padding
        self._limit = context_limit(self._config_holder(), self.tokenizer, self.options)
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
        self.pad_id = int(pad)
        self.eos_ids = self._eos_ids()
        self._generated = 0
        self._new_tokens = 0
        self._hit_limit = 0
        self._prompt_tokens = 0

    @classmethod
    def from_run(cls, spec: ModelSpec, run) -> "HFTextGenerator":
        return cls(spec, LoadOptions.from_run(run), batch_size=run.batch_size, chat_template=run.chat_template,
                   adapter=run.adapter)

    @staticmethod
    def _causal_class():
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM

    def _load_weights(self) -> None:
        try:
            self._model, self.device = load_pretrained(self._causal_class(), self.spec, self.options)
        except ValueError as exc:  # e.g. an encoder-only config
            raise ModelError(f"model '{self.spec.name}' cannot generate text (not a causal LM): {exc}") from None

    def _eos_ids(self) -> List[int]:
        """Every token that ends an answer: the tokenizer's and the generation config's EOS (the
        loaded model's, else the one it will have, read from its files)."""
        if self._model is not None:
            gen = getattr(self._model, "generation_config", None)
        else:
            gen = generation_config(self.spec, self._config_holder().config)
        return token_ids(self.tokenizer.eos_token_id, getattr(gen, "eos_token_id", None))

    # -- description ----------------------------------------------------------------------
    def identity(self) -> Dict:
        return {
            "model": self.spec.name,
            "model_id": self.spec.public_id,
            "revision": self._revision(),
            "backend": self.backend,
            "kind": "causal",
            "dtype": self._dtype_name(),
            "chat_template": self.chat,
            "decoding": "greedy",
            "eos_ids": self.eos_ids,
            "adapter": (self.adapter_info or {}).get("hash"),
        }

    def efficiency_counters(self) -> Dict:
        # a run served from the cache loads no weights: no parameter count
        return {"device": str(self.device), "dtype": self._dtype_name(), "parameters": self._parameters(),
                "tokens_in_prompts": self._prompt_tokens, "tokens_processed": self._prompt_tokens + self._new_tokens}

    def diagnostics(self) -> Dict:
        return {"batch_size": self.batch_size, "device": str(self.device), "generated": self._generated,
                "new_tokens": self._new_tokens, "answers_at_token_limit": self._hit_limit}

    def begin_scenario(self) -> None:
        self._generated = self._new_tokens = self._hit_limit = self._prompt_tokens = 0

    # -- generating -----------------------------------------------------------------------
    def generate(self, prompts: Sequence[str], max_new_tokens: int,
                 on_result: Optional[OnText] = None) -> List[str]:
        ids = self.prompt_ids(prompts, max_new_tokens)
        out: List[Optional[str]] = [None] * len(prompts)
        order = sorted(range(len(prompts)), key=lambda i: len(ids[i]))  # length-sorted batches
        start = 0
        while start < len(order):
            batch = order[start : start + self.batch_size]
            try:
                texts = self._generate_batch([ids[i] for i in batch], max_new_tokens)
            except (RuntimeError, MemoryError) as exc:
                if not is_oom(exc):
                    raise
                if self.torch.cuda.is_available():
                    self.torch.cuda.empty_cache()
                if not self.auto_batch or self.batch_size == 1:
                    raise ModelError(f"out of memory at batch size {self.batch_size}; use a smaller --batch-size, "
                                     "a smaller --listwise-k or --quantization 4bit") from None
                self.batch_size = max(1, self.batch_size // 2)
                continue
            self._prompt_tokens += sum(len(ids[i]) for i in batch)
            for i, text in zip(batch, texts):
                out[i] = text
                if on_result is not None:
                    on_result(i, text)
            start += len(batch)
        return out  # type: ignore[return-value]

    def _generate_batch(self, batch: List[List[int]], max_new_tokens: int) -> List[str]:
        torch = self.torch
        from transformers import GenerationConfig

        width = max(len(s) for s in batch)
        input_ids, mask = pad_batch(torch, batch, self.pad_id, left=True)  # every answer starts at `width`
        config = GenerationConfig(max_new_tokens=int(max_new_tokens), do_sample=False, num_beams=1,
                                  pad_token_id=self.pad_id, eos_token_id=self.eos_ids or None)
        with torch.inference_mode():
            generated = self.model.generate(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
                                            generation_config=config)
        new = generated[:, width:].tolist()
        texts = []
        for row in new:
            ended = next((k for k, t in enumerate(row) if t in self.eos_ids), None)
            kept = row[:ended] if ended is not None else row
            if ended is None and len(row) >= max_new_tokens:
                self._hit_limit += 1
            self._new_tokens += len(kept)
            texts.append(self.tokenizer.decode(kept, skip_special_tokens=True).strip())
        self._generated += len(batch)
        return texts

    def close(self) -> None:
        self._model = None
