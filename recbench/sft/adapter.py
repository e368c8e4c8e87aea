"""LoRA adapters on disk, and applying one strictly for evaluation (PROTOCOL §7, §9).

An adapter folder is peft's own format (adapter_config.json + adapter_model.safetensors),
plus recbench_sft.json (the training config, base-model identity and history) and a
COMPLETE marker written last. Loading never falls back to non-strict: the base model must
match, every LoRA tensor in the file must land in a LoRA module of the model (no missing,
unexpected or mis-shaped keys), and the adapted model must give different outputs than the
base model on a probe batch. Any failure is one ModelError line.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import ConfigError, ModelError, require
from ..models import ALIASES, PACKAGED, ModelSpec

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
META_FILE = "recbench_sft.json"
COMPLETE = "COMPLETE"
PARTIAL_SUFFIX = ".partial"

# Attention query/value projections by naming convention, most common first (PROTOCOL §7:
# "LoRA on the attention query/value projections by default"). Fused projections adapt q,k,v.
QV_CANDIDATES: Tuple[Tuple[str, ...], ...] = (
    ("q_proj", "v_proj"),  # Llama, Mistral, Qwen, OPT, Phi, GPT-NeoX-style forks
    ("query", "value"),  # BERT, RoBERTa, E5, MiniLM
    ("q_lin", "v_lin"),  # DistilBERT
    ("query_key_value",),  # GLM, Falcon, BLOOM
    ("qkv_proj",),  # Phi-3
    ("Wqkv",),  # MPT, ModernBERT
    ("c_attn",),  # GPT-2
    ("q", "v"),  # T5
)

PROBE_TEXTS = (
    "You are a recommender. User behavior sequence:\n(1) The Matrix (1999) — science fiction movie\n"
    "(2) Dune — science fiction book\nCandidate item: Alien (1979) — horror movie\nAnswer (Yes/No):",
    "User behavior sequence:\n(1) Kind of Blue (Miles Davis) — jazz album\nCandidate item: Abbey Road — pop album",
)


# -- identity -----------------------------------------------------------------------------


def base_key(spec: ModelSpec) -> str:
    """A machine-independent name of the base weights: the alias for packaged models, the
    hub id for other aliases and hub ids, the absolute folder otherwise (+ the GGUF file)."""
    name = spec.name.strip().lower()
    if name in PACKAGED:
        key = name
    elif name in ALIASES:
        key = ALIASES[name].model_id
    else:
        key = spec.model_id
    if spec.gguf_file and not key.endswith(spec.gguf_file) and name not in PACKAGED:
        key = f"{key}:{spec.gguf_file}"
    return key


def arch_fingerprint(model) -> Dict:
    """Shape-defining config values: two models with different ones cannot share an adapter."""
    cfg = getattr(model, "config", None)
    out: Dict = {"model_type": getattr(cfg, "model_type", None)}
    for key, names in (
        ("vocab_size", ("vocab_size",)),
        ("hidden_size", ("hidden_size", "d_model", "n_embd", "dim")),
        ("layers", ("num_hidden_layers", "n_layer", "num_layers", "n_layers")),
        ("heads", ("num_attention_heads", "n_head", "num_heads")),
    ):
        for n in names:
            val = getattr(cfg, n, None)
            if isinstance(val, int):
                out[key] = val
                break
    return out


def base_identity(spec: ModelSpec, model) -> Dict:
    return {"key": base_key(spec), "name": spec.name, "model_id": spec.model_id, "gguf_file": spec.gguf_file,
            "revision": spec.revision, "kind": spec.kind, "arch": arch_fingerprint(model)}


def _same_base(recorded: Dict, spec: ModelSpec, model) -> Optional[str]:
    """None when the recorded base matches; else why not (for the error line)."""
    arch_now = arch_fingerprint(model)
    arch_then = recorded.get("arch") or {}
    diff = [k for k in arch_then if k in arch_now and arch_then[k] != arch_now[k]]
    key_then, key_now = str(recorded.get("key", "")), base_key(spec)
    if diff:
        shown = ", ".join(f"{k} {arch_then[k]} vs {arch_now[k]}" for k in diff)
        return f"it was trained on '{recorded.get('name') or key_then}', a different architecture ({shown})"
    if key_then == key_now:
        return None

    def stem(k: str) -> str:
        return os.path.basename(k.split(":", 1)[0].rstrip("/\\")).lower()

    if stem(key_then) and stem(key_then) == stem(key_now):
        return None  # the same hub model held in a local folder (or vice versa), same shapes
    return f"it was trained on base model '{recorded.get('name') or key_then}' ({key_then}), not '{spec.name}' ({key_now})"


# -- target modules ------------------------------------------------------------------------


def adaptable_modules(model) -> List[str]:
    """Full names of the weight-bearing leaf modules LoRA can wrap (Linear, Conv1D, 4/8-bit)."""
    out = []
    for name, module in model.named_modules():
        if not name or any(True for _ in module.children()):
            continue
        weight = getattr(module, "weight", None)
        if weight is not None and getattr(weight, "ndim", 0) == 2 and "embed" not in name.lower() \
                and not name.endswith(("lm_head", "wte", "wpe")):
            out.append(name)
    return out


def _leaf(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def default_target_modules(model) -> List[str]:
    """The attention query/value projections of this architecture (PROTOCOL §7)."""
    leaves = {_leaf(n) for n in adaptable_modules(model)}
    for names in QV_CANDIDATES:
        if all(n in leaves for n in names):
            return list(names)
    peft_utils = require("peft.utils", "sft", "fine-tuning")
    mapping = getattr(peft_utils, "TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING", {})
    mtype = getattr(getattr(model, "config", None), "model_type", None)
    if mtype in mapping:
        return list(mapping[mtype])
    raise ConfigError(
        f"cannot tell the attention projections of this {mtype or 'unknown'} model; pass --target-modules "
        f"(its linear layers: {', '.join(sorted(leaves)[:12])})"
    )


def check_target_modules(model, targets: Sequence[str], what: str = "the model") -> None:
    """Every requested name must match at least one adaptable module (peft itself only
    requires one of them to match, which would silently skip the others)."""
    names = adaptable_modules(model)
    leaves = sorted({_leaf(n) for n in names})
    absent = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if absent:
        raise ConfigError(
            f"target module(s) {', '.join(repr(a) for a in absent)} not found in {what}; "
            f"its adaptable layers are: {', '.join(leaves[:16])}{', ...' if len(leaves) > 16 else ''}"
        )


def layer_count(model) -> Optional[int]:
    return arch_fingerprint(model).get("layers")


# -- folders -----------------------------------------------------------------------------


@dataclass
class AdapterFolder:
    path: Path
    config: Dict
    meta: Optional[Dict]  # recbench_sft.json (None for adapters made elsewhere)

    @property
    def weights(self) -> Path:
        return self.path / ADAPTER_WEIGHTS


def read_adapter_folder(path) -> AdapterFolder:
    """Check an adapter folder's files; one ModelError line per problem."""
    p = Path(str(path)).expanduser()
    if not p.exists():
        partial = p.with_name(p.name + PARTIAL_SUFFIX)
        if partial.is_dir():
            raise ModelError(f"adapter {p} is an interrupted training run ({partial.name} has no {COMPLETE} "
                             "marker); rerun the same `recbench sft` command to resume it")
        raise ModelError(f"adapter folder not found: {p}")
    if not p.is_dir():
        raise ModelError(f"--adapter must be an adapter folder (with {ADAPTER_CONFIG}), got the file {p}")
    meta = None
    if (p / META_FILE).is_file():
        try:
            meta = json.loads((p / META_FILE).read_text(encoding="utf-8"))
        except ValueError:
            raise ModelError(f"adapter {p}: {META_FILE} is not valid JSON") from None
    if p.name.endswith(PARTIAL_SUFFIX) or (meta is not None and not (p / COMPLETE).is_file()):
        raise ModelError(f"adapter {p} is an interrupted training run (no {COMPLETE} marker); rerun the same "
                         "`recbench sft` command to resume it, or pass --overwrite to start over")
    if not (p / ADAPTER_CONFIG).is_file():
        raise ModelError(f"adapter {p} has no {ADAPTER_CONFIG}; is it a peft LoRA adapter folder?")
    if not (p / ADAPTER_WEIGHTS).is_file():
        bins = (p / "adapter_model.bin").is_file()
        raise ModelError(f"adapter {p} has no {ADAPTER_WEIGHTS}" + (
            " (only a pickled adapter_model.bin, which recbench does not load; re-save it with safetensors)"
            if bins else ""))
    try:
        config = json.loads((p / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except ValueError:
        raise ModelError(f"adapter {p}: {ADAPTER_CONFIG} is not valid JSON") from None
    if str(config.get("peft_type", "")).upper() != "LORA":
        raise ModelError(f"adapter {p} is a {config.get('peft_type') or 'unknown'} adapter; only LoRA is supported")
    return AdapterFolder(p, config, meta)


_HASH_CACHE: Dict[Tuple[str, int, int], str] = {}


def weights_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASH_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _HASH_CACHE[key] = h.hexdigest()
    return _HASH_CACHE[key]


def adapter_hash(path) -> str:
    """'<config hash>.<weights hash>' (8 + 8 hex): the config part matches the folder name,
    the weights part (sha256 of the whole weights file) tells a retrained (--overwrite)
    adapter apart. Adapters made elsewhere have no recbench config hash: their 8 hex cover
    adapter_config.json too (its lora_alpha scales the weights). Cheap: no model needed."""
    folder = read_adapter_folder(path)
    weights = weights_sha256(folder.weights)
    cfg_hash = (folder.meta or {}).get("config_hash")
    if cfg_hash:
        return f"{cfg_hash}.{weights[:8]}"
    config = hashlib.sha256((folder.path / ADAPTER_CONFIG).read_bytes()).hexdigest()
    return hashlib.sha256(f"{config}:{weights}".encode()).hexdigest()[:8]


# -- applying ------------------------------------------------------------------------------


def _probe(model, tokenizer) -> List:
    """The model's outputs (logits, else hidden states) on the probe texts, one at a time."""
    torch = require("torch", "hf", "local models")
    device = next(model.parameters()).device
    outs = []
    was_training = model.training
    model.eval()
    try:
        for text in PROBE_TEXTS:
            ids = tokenizer(text, return_tensors="pt")["input_ids"].to(device)
            with torch.inference_mode():
                out = model(input_ids=ids)
            value = getattr(out, "logits", None)
            if value is None:
                value = getattr(out, "last_hidden_state", None)
            if value is None:
                value = out[0]
            outs.append(value.float().cpu())
    finally:
        model.train(was_training)
    return outs


def apply_adapter(model, adapter_path, scorer) -> Tuple[object, Dict]:
    """Apply a LoRA adapter to `model` strictly; returns (adapted model, adapter info).

    The returned model is the base model's own class with LoRA layers injected (so its
    forward signature, which the scorers inspect, is unchanged) and in eval mode."""
    peft = require("peft", "sft", "LoRA adapters")
    torch = require("torch", "hf", "local models")
    from safetensors.torch import load_file

    folder = read_adapter_folder(adapter_path)
    spec: ModelSpec = scorer.spec
    meta = folder.meta or {}
    where = f"adapter {folder.path}"
    if meta.get("scheme") and _trained_kind(meta["scheme"]) not in (None, scorer.kind):
        raise ModelError(f"{where} was trained for the {meta['scheme']} scheme; evaluate it with --scheme {meta['scheme']}")
    if meta.get("base"):
        why = _same_base(meta["base"], spec, model)
        if why:
            raise ModelError(f"{where} does not fit model '{spec.name}': {why}")
    else:
        recorded = str(folder.config.get("base_model_name_or_path") or "")
        if recorded:
            why = _same_base({"key": recorded, "name": recorded}, spec, model)
            if why:
                raise ModelError(f"{where} does not fit model '{spec.name}': {why}")

    targets = folder.config.get("target_modules") or []
    if isinstance(targets, str):  # a regex in peft's format
        names = adaptable_modules(model)
        import re

        if not any(re.fullmatch(targets, n) for n in names):
            raise ModelError(f"{where} targets modules ({targets}) that model '{spec.name}' lacks; "
                             "is it an adapter for another base model?")
    else:
        try:
            check_target_modules(model, targets, f"model '{spec.name}'")
        except ConfigError as exc:
            raise ModelError(f"{where} does not fit: {exc}; is it an adapter for another base model?") from None

    before = _probe(model, scorer.tokenizer)
    try:
        config = peft.LoraConfig.from_pretrained(str(folder.path))
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{where}: unreadable {ADAPTER_CONFIG}: {str(exc).splitlines()[0][:160]}") from None
    config.inference_mode = True
    config.base_model_name_or_path = None  # checked above; peft would warn that it differs from this folder
    try:
        peft_model = peft.get_peft_model(model, config)
    except ValueError as exc:
        raise ModelError(f"{where} does not fit model '{spec.name}': {str(exc).splitlines()[0][:200]}") from None
    state = load_file(str(folder.weights), device="cpu")
    if not state:
        raise ModelError(f"{where}: {ADAPTER_WEIGHTS} holds no tensors")
    try:
        result = peft.set_peft_model_state_dict(peft_model, state, adapter_name="default")
    except RuntimeError as exc:  # size mismatch: an adapter for another base model
        first = next((ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln), str(exc).splitlines()[0])
        raise ModelError(f"{where} does not fit model '{spec.name}' ({first[:200]}); "
                         "is it an adapter for another base model?") from None
    unexpected = list(result.unexpected_keys)
    missing = [k for k in result.missing_keys if "lora_" in k]
    if unexpected or missing:
        detail = (f"{len(unexpected)} weight(s) in the file matched no LoRA module (e.g. {unexpected[0]})" if unexpected
                  else f"{len(missing)} LoRA weight(s) of the model are absent from the file (e.g. {missing[0]})")
        raise ModelError(f"{where} was not fully applied to model '{spec.name}': {detail}; refusing to evaluate "
                         "a partially loaded adapter")
    adapted = peft_model.get_base_model()
    adapted.eval()
    after = _probe(adapted, scorer.tokenizer)
    changed = max(float((a - b).abs().max()) for a, b in zip(after, before))
    scale = max(1.0, max(float(b.abs().max()) for b in before))
    if not changed > 1e-6 * scale:
        raise ModelError(f"{where} does not change model '{spec.name}''s outputs on a probe batch "
                         "(its LoRA weights are zero or were not applied); refusing to report it as tuned")
    del torch
    info = {
        "path": str(folder.path.resolve()),
        "hash": adapter_hash(folder.path),
        "base_model": (meta.get("base") or {}).get("key") or folder.config.get("base_model_name_or_path"),
        "config_hash": meta.get("config_hash"),
        "weights_sha256": weights_sha256(folder.weights),
        "trained_on": (meta.get("config") or {}).get("train"),
        "best_valid_gauc": meta.get("best_valid_gauc"),
        "lora_tensors": len(state),
        "probe_max_logit_change": round(changed, 6),
        "prompt": meta.get("prompt"),
    }
    _warn_prompt_mismatch(meta.get("prompt"), scorer)
    return adapted, info


def _warn_prompt_mismatch(prompt: Optional[Dict], scorer) -> None:
    """Training inputs equal evaluation inputs only under the same prompt settings."""
    if not prompt:
        return
    import sys

    notes = []
    opts = getattr(scorer, "options", None)
    if prompt.get("max_length") != getattr(opts, "max_length", None):
        notes.append(f"--max-length {prompt.get('max_length')}")
    chat = getattr(scorer, "chat", None)
    if chat is not None and bool(prompt.get("chat_template")) != bool(chat):
        notes.append("--chat-template" if prompt.get("chat_template") else "--no-chat-template")
    if notes:
        print(f"recbench: note: the adapter was trained with {', '.join(notes)}; evaluate with the same "
              "settings for identical inputs", file=sys.stderr)


def _trained_kind(scheme_name: str):
    """The scorer ability an adapter's scheme scores with (None for an unknown scheme)."""
    from ..schemes import SCHEMES, get_scheme

    return get_scheme(scheme_name).scorer_kind if scheme_name in SCHEMES else None
