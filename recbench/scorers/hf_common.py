"""Loading Hugging Face models and tokenizers the same way for every local scorer."""

from __future__ import annotations

import functools
import os
import re
import time
import weakref
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, List, Optional, Sequence, Tuple

from ..errors import ConfigError, ModelError, require
from ..models import ModelSpec


@dataclass(frozen=True)
class LoadOptions:
    """How to place a local model. None means: choose sensibly for this machine."""

    device: Optional[str] = None  # cpu | cuda | cuda:1 | mps
    dtype: Optional[str] = None  # float32 | bfloat16 | float16
    quantization: Optional[str] = None  # 8bit | 4bit (bitsandbytes, CUDA)
    device_map: Optional[str] = None  # auto: spread a large model over GPUs
    trust_remote_code: bool = False
    max_length: Optional[int] = None  # cap on the context budget

    @classmethod
    def from_run(cls, run) -> "LoadOptions":
        return cls(device=run.device, dtype=run.dtype, quantization=run.quantization, device_map=run.device_map,
                   trust_remote_code=run.trust_remote_code, max_length=run.max_length)


def torch_module():
    return require("torch", "hf", "local models")


def pick_device(requested: Optional[str]) -> str:
    torch = torch_module()
    if requested:
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"--device {requested} asked for, but CUDA is not available on this machine")
        return requested
    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


def pick_dtype(requested: Optional[str], device: str):
    torch = torch_module()
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if requested:
        if requested not in names:
            raise ConfigError(f"unknown dtype '{requested}'; use float32, bfloat16 or float16")
        return names[requested]
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def model_kwargs(spec: ModelSpec, opts: LoadOptions, device: str) -> dict:
    torch = torch_module()
    kw: dict = {"trust_remote_code": opts.trust_remote_code, "dtype": pick_dtype(opts.dtype, device)}
    if spec.revision:
        kw["revision"] = spec.revision
    if spec.gguf_file:
        kw["gguf_file"] = spec.gguf_file
    else:
        kw["use_safetensors"] = _has_safetensors(spec)
    if opts.quantization:
        if not device.startswith("cuda"):
            raise ConfigError("8/4-bit loading (bitsandbytes) needs a CUDA GPU; drop --quantization on CPU")
        require("bitsandbytes", "qlora", "8/4-bit loading")
        from transformers import BitsAndBytesConfig

        if opts.quantization == "4bit":
            kw["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=kw["dtype"],
                bnb_4bit_use_double_quant=True)
        elif opts.quantization == "8bit":
            kw["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        else:
            raise ConfigError("--quantization must be 8bit or 4bit")
        kw["device_map"] = opts.device_map or {"": 0}
    elif opts.device_map:
        kw["device_map"] = opts.device_map
    del torch
    return kw


def _has_safetensors(spec: ModelSpec) -> Optional[bool]:
    """Prefer safetensors; allow .bin only for local folders that have nothing else."""
    if os.path.isdir(spec.model_id):
        files = os.listdir(spec.model_id)
        return True if any(f.endswith(".safetensors") for f in files) else None
    return None  # hub: transformers prefers safetensors when available


# Library warnings that tell a recbench user nothing (message regex, category): peft looks up
# the base model's config on the Hub when it saves adapter weights (recbench's base ids are
# aliases or local folders, so offline or not that lookup can only fail), and peft still reads
# an attribute that transformers has deprecated.
LIBRARY_NOISE = (
    (r"Unable to fetch remote file due to the following error", UserWarning),
    (r"Could not find a config file in .* - will assume that the vocabulary was not modified", UserWarning),
    (r"`is_gradient_checkpointing` is deprecated", FutureWarning),
)


def quiet_transformers() -> None:
    """recbench shows its own progress; transformers' loading bars and length warnings
    (recbench truncates prompts itself) and the library noise above would only clutter stderr."""
    require("transformers", "hf", "local models")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    for message, category in LIBRARY_NOISE:
        warnings.filterwarnings("ignore", message=message, category=category)


def _env_on(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def offline_mode_set() -> bool:
    return _env_on("HF_HUB_OFFLINE") or _env_on("TRANSFORMERS_OFFLINE")


@functools.lru_cache(maxsize=None)
def hub_reachable(timeout: float = 3.0) -> bool:
    """One quick request to the Hub (once per process): without it, a machine with no route
    to the Hub spends about a minute in retries before the same error."""
    import urllib.error
    import urllib.request

    try:
        from huggingface_hub import constants

        endpoint = constants.ENDPOINT
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        endpoint = "https://huggingface.co"
    try:
        urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout).close()
    except urllib.error.HTTPError:
        return True  # the server answered
    except (OSError, ValueError):
        return False
    return True


def hub_copy_only(spec: ModelSpec) -> bool:
    """True when a Hub model must come from the local cache (offline mode, or the Hub cannot
    be reached); raises one clear ModelError at once when it is not cached. False for local
    folders and when the Hub is reachable (transformers downloads as usual)."""
    if os.path.exists(spec.model_id):
        return False
    offline = offline_mode_set()
    if not offline and hub_reachable():
        return False
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(spec.model_id, spec.gguf_file or "config.json", revision=spec.revision)
    except Exception:  # noqa: BLE001 - not a Hub id: leave the error to transformers
        return False
    if not isinstance(found, str):
        why = ("offline mode is on (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE)" if offline
               else "the Hugging Face Hub cannot be reached")
        raise ModelError(
            f"model '{spec.name}' ({spec.model_id}) is not in the local Hugging Face cache and {why}; "
            f"download it once while online (hf download {spec.model_id}) or pass a local folder "
            "with --model PATH")
    return True


def load_tokenizer(spec: ModelSpec, opts: LoadOptions):
    quiet_transformers()
    from transformers import AutoTokenizer

    kw = {"trust_remote_code": opts.trust_remote_code}
    if hub_copy_only(spec):
        kw["local_files_only"] = True
    if spec.revision:
        kw["revision"] = spec.revision
    if spec.gguf_file:
        kw["gguf_file"] = spec.gguf_file
        meta = gguf_meta_folder(spec)
        if meta is not None and (meta / "config.json").is_file():
            from transformers import AutoTokenizer as Auto

            return Auto.from_pretrained(meta, local_files_only=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(spec.model_id, **kw)
    except (OSError, ValueError) as exc:
        raise ModelError(_load_hint(spec, exc)) from None
    if spec.gguf_file:
        _save_gguf_meta(spec, opts, tokenizer)
    return tokenizer


def gguf_cache_prefix(spec: ModelSpec) -> Optional[Path]:
    """The common start of a local GGUF model's converted folders: its file's content
    fingerprint and the transformers version that converts it (a copy made by another
    version is never reused); None when the model is not a local GGUF file."""
    path = Path(spec.model_id).expanduser()
    if not spec.gguf_file or not (path / spec.gguf_file).is_file():
        return None
    import transformers

    from ..fingerprint import fingerprint

    return model_cache_dir() / f"gguf-{fingerprint(path, spec.gguf_file)[:24]}.tf{transformers.__version__}"


def gguf_meta_folder(spec: ModelSpec) -> Optional[Path]:
    """Where a GGUF model's tokenizer and config are kept once read (reading them from the GGUF
    parses its whole vocabulary: seconds each time)."""
    prefix = gguf_cache_prefix(spec)
    return None if prefix is None else prefix.with_name(prefix.name + "-meta")


def _save_gguf_meta(spec: ModelSpec, opts: LoadOptions, tokenizer) -> None:
    """Tokenizer and config of a GGUF model, saved for the next load (best effort)."""
    import shutil
    import tempfile

    folder = gguf_meta_folder(spec)
    if folder is None or folder.exists():
        return
    try:
        config = _config_from_source(spec, opts)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
        tokenizer.save_pretrained(tmp)
        config.save_pretrained(tmp)  # written last: its presence marks a complete folder
        try:
            os.replace(tmp, folder)
        except OSError:  # another process published it first
            shutil.rmtree(tmp, ignore_errors=True)
    except (OSError, ValueError, TypeError, AttributeError, ModelError):
        pass


def _load_hint(spec: ModelSpec, exc: Exception) -> str:
    msg = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    if "trust_remote_code" in str(exc):
        return f"model '{spec.name}' ships its own code; rerun with --trust-remote-code if you trust it"
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    tip = " (HF_HUB_OFFLINE=1 is set: only models already in the local cache load)" if offline else ""
    return f"cannot load model '{spec.name}' ({spec.model_id}){tip}: {msg}"


# -- item text as plain text ------------------------------------------------------------
#
# Item titles are data. A title holding a special-token string ('<|im_start|>assistant',
# '[MASK]', '</s>') must reach the model as those characters, never as the control token
# (it would forge a chat turn or a second mask). The chat template's own markers, outside
# the data, stay special. When the data holds no special-token string, encoding is exactly
# one plain tokenizer call, so ordinary prompts tokenize as they always did.

_SPECIALS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def special_pattern(tokenizer) -> Optional["re.Pattern[str]"]:
    """A regex matching the tokenizer's special-token strings (longest first), or None."""
    try:
        if tokenizer in _SPECIALS:
            return _SPECIALS[tokenizer]
    except TypeError:
        pass
    names = set(getattr(tokenizer, "all_special_tokens", None) or [])
    for tok in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        if getattr(tok, "special", False):
            names.add(str(getattr(tok, "content", tok)))
    names = {n for n in names if n}
    pat = re.compile("|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))) if names else None
    try:
        _SPECIALS[tokenizer] = pat
    except TypeError:
        pass
    return pat


def _special_wrap(tokenizer) -> Tuple[List[int], List[int]]:
    """The ids the tokenizer adds around one sequence (BOS, [CLS] ... [SEP])."""
    bare = list(tokenizer("a", add_special_tokens=False)["input_ids"])
    full = list(tokenizer("a", add_special_tokens=True)["input_ids"])
    for k in range(len(full) - len(bare) + 1):
        if full[k : k + len(bare)] == bare:
            return full[:k], full[k + len(bare):]
    return [], []


def encode_plain(tokenizer, text: str, data: Sequence[Tuple[int, int]], add_special_tokens: bool) -> List[int]:
    """Token ids of `text` in which the character spans `data` are plain text.

    Special-token strings overlapping `data` are tokenized as characters; those outside it
    (the chat template's markers, an appended [MASK]) stay special tokens. Without any in
    `data` this is exactly tokenizer(text)."""
    pat = special_pattern(tokenizer)
    matches = list(pat.finditer(text)) if pat is not None else []

    def in_data(m) -> bool:
        return any(m.start() < b and a < m.end() for a, b in data)

    if not any(in_data(m) for m in matches):
        return list(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])
    ids: List[int] = []
    pos = 0

    def plain(piece: str) -> None:
        if piece:
            ids.extend(tokenizer(piece, add_special_tokens=False, split_special_tokens=True)["input_ids"])

    for m in matches:
        if in_data(m):
            continue
        plain(text[pos : m.start()])
        ids.append(int(tokenizer.convert_tokens_to_ids(m.group(0))))
        pos = m.end()
    plain(text[pos:])
    if add_special_tokens:
        head, tail = _special_wrap(tokenizer)
        ids = head + ids + tail
    return ids


def count_plain(tokenizer, text: str) -> int:
    """Tokens of a text that is all data (a prompt before any chat wrapper), with the
    tokenizer's own BOS/[CLS]/[SEP]."""
    return len(encode_plain(tokenizer, text, [(0, len(text))], True))


def model_cache_dir() -> Path:
    """Where converted weights are kept: $RECBENCH_MODEL_CACHE, else <recbench cache>/models."""
    env = os.environ.get("RECBENCH_MODEL_CACHE")
    if env:
        return Path(env).expanduser()
    from ..scenarios.cache import default_cache_dir

    return default_cache_dir() / "models"


def gguf_copy_folder(spec: ModelSpec, kw: dict, head: str = "") -> Optional[Path]:
    """The folder of a GGUF model's de-quantised weights (safetensors), keyed by the GGUF file's
    content fingerprint and transformers version (`gguf_cache_prefix`), the model class loaded (`head`: a causal LM and a bare encoder keep
    different tensors) and the dtype; None where no copy applies (not GGUF, quantized, placed
    by a device map)."""
    if "quantization_config" in kw or "device_map" in kw:
        return None
    prefix = gguf_cache_prefix(spec)
    if prefix is None:
        return None
    dtype = str(kw.get("dtype")).replace("torch.", "")
    return prefix.with_name(f"{prefix.name}-{head or 'model'}-{dtype}")


def _save_gguf_copy(model, folder: Path) -> None:
    """Save de-quantised weights for the next load (best effort: a full disk only costs time)."""
    import shutil
    import tempfile

    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
        quantizer = getattr(model, "hf_quantizer", None)
        config_q = getattr(model.config, "quantization_config", None)
        model.hf_quantizer = None  # the weights are plain tensors now; GGUF configs refuse to save otherwise
        if config_q is not None:
            del model.config.quantization_config
        try:
            model.save_pretrained(tmp)  # safetensors (transformers 5 writes nothing else)
        finally:
            model.hf_quantizer = quantizer
            if config_q is not None:
                model.config.quantization_config = config_q
        try:
            os.replace(tmp, folder)  # atomic: complete or absent
        except OSError:  # another process published it first
            shutil.rmtree(tmp, ignore_errors=True)
    except (OSError, ValueError, TypeError, AttributeError):
        pass


def load_pretrained(auto_cls, spec: ModelSpec, opts: LoadOptions, progress: bool = True):
    """Load weights with the right dtype/device; returns (model, device).

    A GGUF file is de-quantised once: the result is kept as safetensors under
    `model_cache_dir()` (keyed by the file's content and the dtype) and loaded from there next
    time (seconds instead of minutes, the same tensors)."""
    device = pick_device(opts.device)
    kw = model_kwargs(spec, opts, device)
    if hub_copy_only(spec):
        kw["local_files_only"] = True
    copy = gguf_copy_folder(spec, kw, getattr(auto_cls, "__name__", ""))
    try:
        with _progress_bars(progress):
            if copy is not None and (copy / "config.json").is_file():
                model = auto_cls.from_pretrained(copy, dtype=kw["dtype"], trust_remote_code=opts.trust_remote_code,
                                                 use_safetensors=True, local_files_only=True)
            else:
                model = auto_cls.from_pretrained(spec.model_id, **kw)
                if copy is not None:
                    _save_gguf_copy(model, copy)
    except (OSError, ValueError) as exc:
        raise ModelError(_load_hint(spec, exc)) from None
    if "device_map" not in kw:
        model.to(device)
    model.eval()
    return model, device


class _progress_bars:
    """transformers' own progress bars (GGUF conversion, shard loading) only when wanted."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.was = True

    def __enter__(self):
        from transformers.utils import logging as hf_logging

        self.was = hf_logging.is_progress_bar_enabled()
        if not self.enabled:
            hf_logging.disable_progress_bar()
        return self

    def __exit__(self, *exc):
        from transformers.utils import logging as hf_logging

        if self.was:
            hf_logging.enable_progress_bar()
        return False


def load_config(spec: ModelSpec, opts: LoadOptions):
    """The model's config without its weights (context size, commit hash)."""
    meta = gguf_meta_folder(spec) if spec.gguf_file else None
    if meta is not None and (meta / "config.json").is_file():
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(meta, local_files_only=True)
    return _config_from_source(spec, opts)


def _config_from_source(spec: ModelSpec, opts: LoadOptions):
    from transformers import AutoConfig

    kw: dict = {"trust_remote_code": opts.trust_remote_code}
    if spec.revision:
        kw["revision"] = spec.revision
    if spec.gguf_file:
        kw["gguf_file"] = spec.gguf_file
    if hub_copy_only(spec):
        kw["local_files_only"] = True
    try:
        return AutoConfig.from_pretrained(spec.model_id, **kw)
    except (OSError, ValueError) as exc:
        raise ModelError(_load_hint(spec, exc)) from None


def context_limit(model, tokenizer, opts: LoadOptions, default: int = 2048) -> int:
    """The usable context: the smallest of config, tokenizer and the user's cap."""
    candidates = []
    cfg = getattr(model, "config", None)
    for attr in ("max_position_embeddings", "n_positions", "seq_length", "max_sequence_length"):
        val = getattr(cfg, attr, None)
        if isinstance(val, int) and val > 0:
            candidates.append(val)
            break
    tml = getattr(tokenizer, "model_max_length", None)
    if isinstance(tml, int) and 0 < tml < 10**7:
        candidates.append(tml)
    if opts.max_length:
        candidates.append(int(opts.max_length))
    return min(candidates) if candidates else default


def local_revision(spec: ModelSpec) -> Optional[str]:
    """The revision of a model held in local files, from their content (no model needed):
    'gguf:<hex>' for a GGUF file, 'local:<hex>' for a folder, plus ';<dist>==<version>' for
    the packaged models. None for models that are not local files (hub ids, APIs).

    A path alone is not an identity: weights saved into the same folder must not reuse the
    old weights' cached scores."""
    from ..fingerprint import fingerprint, package_version
    from ..models import PACKAGED

    path = Path(spec.model_id).expanduser()
    try:
        if spec.gguf_file and (path / spec.gguf_file).is_file():
            rev = "gguf:" + fingerprint(path, spec.gguf_file)
        elif not spec.gguf_file and path.is_dir():
            rev = "local:" + fingerprint(path)
        else:
            return None
    except OSError as exc:
        raise ModelError(f"cannot read the files of model '{spec.name}' ({spec.model_id}) to fingerprint them: "
                         f"{exc.strerror or exc}") from None
    if spec.name in PACKAGED:
        dist = PACKAGED[spec.name][1]
        rev += f";{dist}=={package_version(dist) or 'unknown'}"
    return rev


def model_revision(model, spec: ModelSpec) -> str:
    """Local files: their content fingerprint (`local_revision`); hub models: the commit the
    weights came from when known, else the requested revision."""
    local = local_revision(spec)
    if local:
        return local
    cfg = getattr(model, "config", None)
    commit = getattr(cfg, "_commit_hash", None)
    if commit:
        return str(commit)
    if spec.revision:
        return spec.revision
    return "unknown"


class LazyWeights:
    """The weights of a local model, loaded when a request first needs them: a run served from
    the score cache loads none. Everything that keys the cache (revision, dtype) is read
    without them; `model` loads them on first use, and `weights_load_s` counts the seconds.

    A scorer sets `spec`, `options`, `device` and, where the weights are already in memory,
    `_model`; it implements `_load_weights` (which sets `_model`)."""

    spec: ModelSpec
    options: LoadOptions
    device: str
    _model: Any = None
    _config_only: Any = None
    weights_load_s: float = 0.0

    @property
    def model(self):
        if self._model is None:
            self._load()
        return self._model

    @model.setter
    def model(self, value) -> None:
        self._model = value

    @property
    def weights_loaded(self) -> bool:
        return self._model is not None

    def _load(self) -> None:
        t0 = time.perf_counter()
        self._load_weights()
        self.weights_load_s += time.perf_counter() - t0

    def _load_weights(self) -> None:
        raise NotImplementedError

    def _config_holder(self):
        """The loaded model, else an object with the model's `config` (read without the weights)."""
        if self._model is not None:
            return self._model
        if self._config_only is None:
            self._config_only = SimpleNamespace(config=load_config(self.spec, self.options))
        return self._config_only

    def _revision(self) -> str:
        return model_revision(self._config_holder(), self.spec)

    def _dtype_name(self) -> str:
        """The dtype of the weights; before they load, the one `load_pretrained` will ask for."""
        if self._model is not None:
            return str(next(self._model.parameters()).dtype).replace("torch.", "")
        return str(pick_dtype(self.options.dtype, str(self.device))).replace("torch.", "")

    def _parameters(self) -> Optional[int]:
        """The model's parameter count; None while its weights are not loaded."""
        if self._model is None:
            return None
        return int(sum(p.numel() for p in self._model.parameters()))

    def _fits(self, auto_cls) -> bool:
        """Whether `auto_cls` can load this model's config (checked without the weights)."""
        config = self._config_holder().config
        mapping = getattr(auto_cls, "_model_mapping", None)
        try:
            return mapping is None or type(config) in mapping.keys() or bool(getattr(config, "auto_map", None))
        except (AttributeError, TypeError):
            return True


def split_batches(n: int, batch_size: int):
    for start in range(0, n, batch_size):
        yield start, min(n, start + batch_size)


def is_oom(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "out of memory" in text or "cuda error: out of memory" in text or isinstance(exc, MemoryError)


def parse_batch_size(value) -> Tuple[int, bool]:
    """'auto' -> (start size, shrink on OOM); an integer -> (n, False)."""
    if value in (None, "auto"):
        return 16, True
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"--batch-size must be a positive integer or 'auto', got {value!r}") from None
    if n < 1:
        raise ConfigError(f"--batch-size must be a positive integer or 'auto', got {value!r}")
    return n, False
