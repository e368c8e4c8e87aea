"""LoRA supervised fine-tuning (PROTOCOL §7): `finetune(SFTConfig) -> SFTResult`.

Generative scheme: the evaluation's prompts, rendered and encoded by the evaluation's own
scorer; loss = binary cross-entropy on P(Yes) = softmax of the Yes/No label logits at the
answer position (= sigmoid of their difference). Discriminative scheme: LoRA on the
encoder, a similarity objective between the evaluation's user and item texts.

Validation scores the fine-tuning set's valid users (split by user) with the evaluation
scorer itself, computes gauc per scenario and averages; early stopping keeps the best
adapter. The run lives in `<output>/adapters/<model>-<scheme>-<hash>.partial/` until it
finishes; then recbench_sft.json and a COMPLETE marker are written and the folder is
renamed to its final name in one step, so a folder without `.partial` is always complete.
An interrupted run resumes from `checkpoints/last/` (adapter, optimizer, scheduler, RNG,
step); the batch order of every epoch is a pure function of (seed, epoch).

Multi-GPU: start the same command with `accelerate launch -m recbench sft ...`; each
process takes every world-th sample of each optimizer step, gradients are averaged by DDP.
"""

from __future__ import annotations

import importlib

import json
import math
import os
import shutil
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..errors import ConfigError, ModelError, RecBenchError, require
from ..metrics import gauc as gauc_metric
from ..models import ModelSpec, resolve_model
from ..schemes import get_scheme, resolve_scheme
from ..settings import DEFAULT_SEED
from ..prompts import Template
from ..scorers.hf_batch import answer_logits
from ..scenarios import PROTOCOL_VERSION
from .adapter import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    COMPLETE,
    META_FILE,
    PARTIAL_SUFFIX,
    base_identity,
    base_key,
    check_target_modules,
    default_target_modules,
    layer_count,
)
from .config import SFTConfig, config_hash
from .data import SFTData, build_data, check_finetune_available, epoch_order, load_sft_scenarios, steps_per_epoch

CHECKPOINT_DIR = "checkpoints"


# -- result ---------------------------------------------------------------------------------


@dataclass
class SFTResult:
    """What a fine-tuning run produced (or found already finished)."""

    adapter_path: str
    name: str
    hash: str
    model: str
    scheme: str
    best_valid_gauc: Optional[float]
    best_step: Optional[int]
    zero_shot_valid_gauc: Optional[float]
    history: List[Dict] = field(default_factory=list)
    stopped: str = ""
    reused: bool = False
    train_samples_per_s: Optional[float] = None
    config: Dict = field(default_factory=dict)
    beat_untuned: Optional[bool] = None  # None: no untuned reference (eval_at_start off)
    memory: Dict = field(default_factory=dict)

    def to_dict(self) -> Dict:
        return asdict(self)

    @classmethod
    def from_folder(cls, path, reused: bool = True) -> "SFTResult":
        path = Path(path)
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
        return cls(
            adapter_path=str(path), name=path.name, hash=meta["config_hash"], model=meta["config"]["model"],
            scheme=meta["scheme"], best_valid_gauc=meta.get("best_valid_gauc"), best_step=meta.get("best_step"),
            zero_shot_valid_gauc=meta.get("zero_shot_valid_gauc"), history=meta.get("history", []),
            stopped=meta.get("stopped", ""), reused=reused,
            train_samples_per_s=(meta.get("timings") or {}).get("train_samples_per_s"), config=meta["config"],
            beat_untuned=meta.get("beat_untuned"), memory=meta.get("memory") or {},
        )


# -- entry points -------------------------------------------------------------------------


def run_name(spec: ModelSpec, scheme: str, short_hash: str) -> str:
    return f"{spec.slug}-{scheme}-{short_hash}"


def finetune(config: SFTConfig, progress: bool = True) -> SFTResult:
    """Train (or find) the LoRA adapter for `config`; see the module docstring."""
    cfg = replace(config).validate()  # a copy: resolving defaults must not change the caller's object
    progress = bool(progress and cfg.progress)
    spec = resolve_model(cfg.model, revision=cfg.revision)
    scheme = resolve_scheme(cfg.scheme, spec)
    if spec.backend != "hf":
        raise ConfigError(f"fine-tuning needs local weights; '{spec.name}' is served by the {spec.backend} backend")
    if cfg.chat_template is None:  # the alias's default, exactly as zero-shot resolves it
        cfg.chat_template = scheme.chat_default(spec)
    template = scheme.template(cfg.template)
    check_finetune_available(cfg)
    if cfg.quantization:
        _check_quantization_possible(cfg)
    acc = make_accelerator(cfg)
    with acc.main_process_first():
        scenarios = load_sft_scenarios(cfg, progress=progress and acc.is_main_process)
    hashed = cfg.hashed()
    hashed["effective_batch"] *= acc.num_processes  # batch-size x grad-accum x processes
    payload = {
        "config": hashed,
        "base": base_key(spec),
        "template_sha256": template.sha256,
        "data": {n: sc.fingerprint for n, sc in scenarios.items()},
        "protocol": PROTOCOL_VERSION,
        "dtype": _resolved_dtype(cfg, acc),
    }
    short = config_hash(payload)
    root = Path(cfg.output_dir) / "adapters"
    final = root / run_name(spec, cfg.scheme, short)
    partial = final.with_name(final.name + PARTIAL_SUFFIX)
    if (final / COMPLETE).is_file() and (final / META_FILE).is_file() and not cfg.overwrite:
        if progress and acc.is_main_process:
            print(f"recbench: this config was trained already: {final} (pass --overwrite to retrain)", file=sys.stderr)
        return SFTResult.from_folder(final, reused=True)
    if acc.is_main_process and partial.exists() and (cfg.overwrite or not cfg.resume):
        shutil.rmtree(partial)
    acc.wait_for_everyone()
    module, _, name = (scheme.sft_trainer or "").partition(":")
    if not module:
        raise ConfigError(f"the {scheme.name} scheme has no fine-tuning objective")
    trainer_cls = getattr(importlib.import_module(module), name)
    trainer = trainer_cls(cfg, spec, template, scenarios, acc, final, partial, payload, short, progress)
    return trainer.run()


def finetune_from_bench(bench, *, train=None, valid=None, progress: Optional[bool] = None, **overrides) -> SFTResult:
    """RecBench.finetune(): the bench's model, scheme, data and prompt settings, plus overrides.

    train defaults to the bench's scenarios; any SFTConfig field can be overridden."""
    rc = bench.config
    base = dict(
        model=bench.model, scheme=rc.scheme, train=train if train is not None else list(bench.scenarios),
        valid=valid, output_dir=rc.output_dir, raw_dir=rc.raw_dir, data_seed=rc.seed, template=rc.template,
        chat_template=rc.chat_template, max_length=rc.max_length, dtype=rc.dtype, quantization=rc.quantization,
        device=rc.device, device_map=rc.device_map, trust_remote_code=rc.trust_remote_code, revision=rc.revision,
        strict=rc.strict, use_cache=rc.use_cache, progress=rc.progress, scenario_options=dict(rc.scenario_options),
    )
    known = {f for f in SFTConfig.__dataclass_fields__}
    unknown = sorted(set(overrides) - known)
    if unknown:
        from ..errors import suggest

        raise ConfigError(f"finetune() got an unknown setting '{unknown[0]}'" + suggest(unknown[0], known))
    base.update(overrides)
    cfg = SFTConfig(**base)
    return finetune(cfg, progress=cfg.progress if progress is None else progress)


# -- helpers ----------------------------------------------------------------------------------


def make_accelerator(cfg: SFTConfig):
    """An accelerate Accelerator (process group, device, DDP) for this run."""
    accelerate = require("accelerate", "sft", "fine-tuning")
    cpu = bool(cfg.device and cfg.device.startswith("cpu"))
    try:
        return accelerate.Accelerator(cpu=cpu)
    except ValueError:  # a second run in this process asks for another device: start afresh
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state(reset_partial_state=True)
        return accelerate.Accelerator(cpu=cpu)


def _resolved_dtype(cfg: SFTConfig, acc) -> str:
    """The weights' dtype this run will use (bf16 on CUDA, fp32 on CPU unless --dtype)."""
    from ..scorers.hf_common import pick_dtype

    return str(pick_dtype(cfg.dtype, str(load_options(cfg, acc).device))).replace("torch.", "")


def _check_quantization_possible(cfg: SFTConfig) -> None:
    torch = require("torch", "hf", "local models")
    if not torch.cuda.is_available() or (cfg.device and not cfg.device.startswith("cuda")):
        raise ConfigError("QLoRA (--quantization 4bit/8bit) needs a CUDA GPU with bitsandbytes; "
                          "drop --quantization on this machine")
    require("bitsandbytes", "qlora", "QLoRA (4-bit) fine-tuning")


def prepare_quantized(model, cfg: SFTConfig):
    """peft's preparation of a 4/8-bit model for training (QLoRA)."""
    peft = require("peft", "sft", "fine-tuning")
    return peft.prepare_model_for_kbit_training(
        model, use_gradient_checkpointing=cfg.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False})


def load_options(cfg: SFTConfig, acc):
    """LoadOptions for this process: its own device under accelerate, 4/8-bit on its GPU."""
    from ..scorers.hf_common import LoadOptions

    device = cfg.device
    device_map = cfg.device_map
    if acc.num_processes > 1 or device is None:
        device = str(acc.device)
    if cfg.quantization and acc.num_processes > 1:
        device_map = f"cuda:{acc.local_process_index}"
    return LoadOptions(device=device, dtype=cfg.dtype, quantization=cfg.quantization, device_map=device_map,
                       trust_remote_code=cfg.trust_remote_code, max_length=cfg.max_length)


def lora_config(cfg: SFTConfig, targets: List[str], n_layers: Optional[int], task_type: Optional[str]):
    peft = require("peft", "sft", "fine-tuning")
    layers = None
    if cfg.lora_layers:
        if not n_layers:
            raise ConfigError("--lora-layers needs a model whose config states its number of layers")
        if cfg.lora_layers > n_layers:
            raise ConfigError(f"--lora-layers {cfg.lora_layers} exceeds the model's {n_layers} layers")
        layers = list(range(n_layers - cfg.lora_layers, n_layers))
    return peft.LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                           target_modules=list(targets), layers_to_transform=layers, bias="none",
                           task_type=task_type)


def peak_memory(torch, device) -> Dict[str, float]:
    """Peak resident memory of this process (MiB, whole process lifetime: model loading
    included) and, on CUDA, peak allocated GPU memory of the device."""
    out: Dict[str, float] = {}
    try:
        import resource

        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS, KiB elsewhere
        out["peak_rss_mb"] = round(kb / (2 ** 20 if sys.platform == "darwin" else 2 ** 10), 1)
    except (ImportError, OSError, ValueError):  # no resource module (Windows)
        pass
    if str(device).startswith("cuda") and torch.cuda.is_available():
        out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated(device) / 2 ** 20, 1)
    return out


def _is_oom(exc: BaseException) -> bool:
    from ..scorers.hf_common import is_oom

    return is_oom(exc)


def _write_json(path: Path, doc: Dict) -> None:
    from ..results import atomic_write_text, _clean

    atomic_write_text(path, json.dumps(_clean(doc), indent=2, ensure_ascii=False) + "\n")


# -- the training loop --------------------------------------------------------------------------


class _Trainer:
    task_type: Optional[str] = None

    def __init__(self, cfg: SFTConfig, spec: ModelSpec, template: Template, scenarios, acc, final: Path,
                 partial: Path, payload: Dict, short: str, progress: bool):
        self.cfg, self.spec, self.template, self.scenarios, self.acc = cfg, spec, template, scenarios, acc
        self.final, self.partial, self.payload, self.short = final, partial, payload, short
        self.progress = progress
        self.torch = require("torch", "hf", "local models")
        self.main = acc.is_main_process
        self.world, self.rank = acc.num_processes, acc.process_index
        # state (checkpointed)
        self.step = 0
        self.micro = cfg.micro_batch()
        self.history: List[Dict] = []
        self.best: Optional[float] = None
        self.best_step: Optional[int] = None
        self.bad_evals = 0
        self.zero_shot: Optional[float] = None
        self.loss_sum = 0.0
        self.loss_n = 0
        self.train_seconds = 0.0
        self.train_samples = 0
        self.stopped = ""

    # to implement: load(), loss_on(indices), score_valid(valid set) -> np.ndarray
    def load(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def loss_on(self, idx: Sequence[int]):  # pragma: no cover - abstract
        raise NotImplementedError

    def score_valid(self, vs, lo: int, hi: int) -> np.ndarray:  # pragma: no cover - abstract
        """Scores of valid samples lo..hi (this process's share), by the evaluation scorer."""
        raise NotImplementedError

    def extra_meta(self) -> Dict:
        return {}

    def training_meta(self) -> Dict:
        """Extra entries of recbench_sft.json's "training" (how the steps were computed)."""
        return {}

    def chunks(self, mine: List[int]) -> List[List[int]]:
        """This process's samples of one step, split into forward passes (micro-batches)."""
        return [mine[i:i + self.micro] for i in range(0, len(mine), self.micro)]

    def batch_groups(self) -> Optional[List[int]]:
        """Sample groups that an epoch's order keeps together (None: samples shuffled freely)."""
        return None

    # -- setup -------------------------------------------------------------------------------
    def setup(self) -> None:
        torch, cfg = self.torch, self.cfg
        self.load()  # sets self.model, self.scorer, self.device
        self.data: SFTData = build_data(cfg, self.scenarios, self.template, self.scorer)
        self.targets = cfg.target_modules or default_target_modules(self.model)
        check_target_modules(self.model, self.targets, f"model '{self.spec.name}'")
        peft = require("peft", "sft", "fine-tuning")
        torch.manual_seed(cfg.seed)
        lcfg = lora_config(cfg, self.targets, layer_count(self.model), self.task_type)
        try:
            self.peft_model = peft.get_peft_model(self.model, lcfg)
        except ValueError as exc:
            raise ConfigError(f"cannot put LoRA on model '{self.spec.name}': {str(exc).splitlines()[0][:200]}") from None
        # record a machine-independent base name (peft would store this machine's folder)
        self.peft_model.peft_config["default"].base_model_name_or_path = base_key(self.spec)
        self.net = self.peft_model.get_base_model()  # LoRA injected; the base class's forward
        if cfg.gradient_checkpointing and not cfg.quantization:
            if not getattr(self.net, "supports_gradient_checkpointing", False):
                raise ConfigError(f"model '{self.spec.name}' does not support --gradient-checkpointing")
            if hasattr(self.net, "activation_checkpointing_enable"):  # transformers >= 5.x (the old name warns)
                self.net.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                self.net.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.params = [p for p in self.peft_model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.per_step = cfg.micro_batch() * cfg.grad_accum * self.world
        self.spe = steps_per_epoch(len(self.data), self.per_step)
        self.total = self.spe * cfg.epochs
        if cfg.max_steps:
            self.total = min(self.total, cfg.max_steps)
        self.warmup = int(round(cfg.warmup_ratio * self.total))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.ddp = self.acc.prepare(self.forward_module()) if self.world > 1 else self.forward_module()
        self.net.train()

    def forward_module(self):
        """What the loss runs (as `self.ddp`, which DDP wraps under several processes): the
        network with its LoRA layers."""
        return self.net

    def _lr_factor(self, step: int) -> float:
        if self.warmup and step < self.warmup:
            return (step + 1) / self.warmup
        if self.cfg.scheduler == "constant":
            return 1.0
        span = max(1, self.total - self.warmup)
        return max(0.0, (self.total - step) / span)

    # -- run ---------------------------------------------------------------------------------
    def run(self) -> SFTResult:
        try:
            self.setup()
            resumed = self.resume()
            self.loop(resumed)
        except KeyboardInterrupt:
            if self.main and self.step > 0:
                self.save_checkpoint(collective=False)  # the other processes may be gone
                print(f"recbench: training interrupted at step {self.step}; checkpoint kept in {self.partial}",
                      file=sys.stderr)
            raise
        except (RuntimeError, MemoryError) as exc:
            self._drop_empty_partial()
            if _is_oom(exc):
                raise self._oom_error() from None
            raise
        except RecBenchError:
            self._drop_empty_partial()
            raise
        return self.finish()

    def _drop_empty_partial(self) -> None:
        """A run that failed before its first checkpoint leaves nothing behind."""
        if self.main and self.partial.is_dir() and not (self.partial / CHECKPOINT_DIR).is_dir():
            shutil.rmtree(self.partial, ignore_errors=True)

    def _oom_error(self) -> ModelError:
        cfg = self.cfg
        half = max(1, self.micro // 2)
        accum = -(-self.micro * cfg.grad_accum // half)
        return ModelError(
            f"out of memory at --batch-size {self.micro}; try --batch-size {half} --grad-accum {accum} (same "
            "effective batch), --gradient-checkpointing, a smaller --max-length or --quantization 4bit"
            + (f"; progress is kept in {self.partial}" if self.step else "")
        )

    def loop(self, resumed: bool) -> None:
        cfg = self.cfg
        if cfg.eval_at_start and self.step == 0 and not self.history:
            res = self.validate()
            self.zero_shot = res["valid_gauc"]
            self.history.append({"step": 0, "epoch": 0.0, "zero_shot": True, **res})
            self._say(f"step 0 (untuned): valid gauc {self._fmt(self.zero_shot)}")
        from tqdm.auto import tqdm

        bar = tqdm(total=self.total, initial=self.step, desc=f"sft {self.spec.name}", unit="step",
                   disable=not (self.progress and self.main), file=sys.stderr, dynamic_ncols=True)
        n = len(self.data)
        last_eval_step = self.history[-1]["step"] if self.history else -1
        epoch = self.step // self.spe
        try:
            while self.step < self.total and not self.stopped:
                order = epoch_order(n, cfg.seed, epoch, self.per_step, self.batch_groups())
                share = self.per_step // self.world
                for k in range(self.step - epoch * self.spe, self.spe):
                    idx = order[k * self.per_step:(k + 1) * self.per_step]
                    t0 = time.perf_counter()
                    # a contiguous share per process keeps a user's candidates together
                    loss = self.train_step([int(i) for i in idx[self.rank * share:(self.rank + 1) * share]])
                    self.train_seconds += time.perf_counter() - t0
                    self.train_samples += len(idx)
                    self.loss_sum += loss
                    self.loss_n += 1
                    bar.update(1)
                    bar.set_postfix(loss=f"{self.loss_sum / max(1, self.loss_n):.4f}",
                                    samples_s=f"{self.train_samples / max(self.train_seconds, 1e-9):.1f}")
                    end_of_epoch = k == self.spe - 1
                    due = (self.step % cfg.eval_every == 0) if cfg.eval_every else end_of_epoch
                    if due or self.step >= self.total:
                        self.evaluate_and_track(epoch)
                        last_eval_step = self.step
                        self.save_checkpoint()
                    elif self.step % cfg.save_every == 0:
                        self.save_checkpoint()
                    if self.stopped or self.step >= self.total:
                        break
                epoch += 1
        finally:
            bar.close()
        if not self.stopped:
            self.stopped = "max_steps" if cfg.max_steps and self.step >= cfg.max_steps else "epochs"
        if last_eval_step != self.step and self.step > 0:
            self.evaluate_and_track(epoch)

    def train_step(self, mine: List[int]) -> float:
        """One optimizer step over this process's share of the step's samples."""
        torch, cfg = self.torch, self.cfg
        while True:
            self.optimizer.zero_grad(set_to_none=True)
            chunks = self.chunks(mine)
            total = 0.0
            try:
                for j, chunk in enumerate(chunks):
                    sync = self.world == 1 or j == len(chunks) - 1
                    with (nullcontext() if sync else self.acc.no_sync(self.ddp)):
                        loss = self.loss_on(chunk)
                        (loss * (len(chunk) / len(mine))).backward()
                    total += float(loss.detach()) * len(chunk)
            except (RuntimeError, MemoryError) as exc:
                if not _is_oom(exc) or not cfg.auto_batch or self.micro == 1 or self.world > 1:
                    raise
                self.optimizer.zero_grad(set_to_none=True)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                self.micro = max(1, self.micro // 2)
                self._say(f"out of memory: batch size halved to {self.micro} (the effective batch is unchanged)")
                continue
            break
        if cfg.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return total / max(1, len(mine))

    # -- validation ----------------------------------------------------------------------------
    def _bar(self, total: int, desc: str, unit: str = "sample"):
        """A tqdm bar on stderr (main process, progress on) for a validation pass."""
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit=unit, leave=False, file=sys.stderr, dynamic_ncols=True,
                    disable=not (self.progress and self.main))

    def validate(self) -> Dict:
        """Valid gauc per scenario (scored by the evaluation scorer) and their mean."""
        from accelerate.utils import gather_object

        t0 = time.perf_counter()
        self.net.eval()
        per: Dict[str, float] = {}
        try:
            for vs in self.data.valid:
                n = len(vs)
                lo, hi = n * self.rank // self.world, n * (self.rank + 1) // self.world
                scores = self.score_valid(vs, lo, hi)
                if self.world > 1:
                    scores = np.asarray(gather_object(list(map(float, scores))), dtype=np.float64)
                per[vs.scenario] = float(gauc_metric(vs.users, vs.labels, np.asarray(scores, dtype=np.float64)).value)
        finally:
            self.net.train()
        values = [v for v in per.values() if not math.isnan(v)]
        mean = float(np.mean(values)) if values else float("nan")
        return {"valid_gauc": mean, "valid": per, "valid_s": round(time.perf_counter() - t0, 2)}

    def evaluate_and_track(self, epoch: int) -> None:
        res = self.validate()
        loss = self.loss_sum / self.loss_n if self.loss_n else None
        entry = {"step": self.step, "epoch": round(self.step / self.spe, 3), "train_loss": loss,
                 "lr": float(self.scheduler.get_last_lr()[0]), **res,
                 "train_samples_per_s": round(self.train_samples / max(self.train_seconds, 1e-9), 3)}
        self.loss_sum, self.loss_n = 0.0, 0
        value = res["valid_gauc"]
        improved = not math.isnan(value) and (self.best is None or value > self.best)
        entry["best"] = improved  # the best tuned validation so far (the adapter kept)
        beats = self._beats_untuned(value)
        if beats is not None:
            entry["beat_untuned"] = beats
        self.history.append(entry)
        if improved:
            self.best, self.best_step, self.bad_evals = value, self.step, 0
            self.save_best()
        else:
            self.bad_evals += 1
            if self.cfg.patience and self.bad_evals >= self.cfg.patience:
                self.stopped = "early_stopping"
        if beats is False:  # never call an adapter worse than the untuned model "best"
            note = f" (below the untuned {self._fmt(self.zero_shot)}"
            note += "; best tuned so far)" if improved else f"; best tuned {self._fmt(self.best)} at step {self.best_step})"
        elif improved:
            note = " (best)"
        else:
            note = f" (best {self._fmt(self.best)} at step {self.best_step})"
        self._say(f"step {self.step} (epoch {entry['epoch']:.2f}): train loss "
                  f"{'-' if loss is None else f'{loss:.4f}'}, valid gauc {self._fmt(value)}" + note)

    def _beats_untuned(self, value: Optional[float]) -> Optional[bool]:
        """Whether a tuned valid gauc is above the untuned model's (None: no untuned reference)."""
        if self.zero_shot is None or math.isnan(self.zero_shot) or value is None:
            return None
        return bool(not math.isnan(value) and value > self.zero_shot)

    # -- files -------------------------------------------------------------------------------------
    def _adapter_state(self):
        peft = require("peft", "sft", "fine-tuning")
        state = peft.get_peft_model_state_dict(self.peft_model, save_embedding_layers=False)  # no Hub lookup
        return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}

    def save_best(self) -> None:
        """The best adapter so far, in peft's format, at the top of the run folder."""
        if self.main:
            self.partial.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=self.partial, prefix=".best-") as tmp:
                self.peft_model.save_pretrained(tmp, safe_serialization=True, save_embedding_layers=False)
                for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
                    os.replace(os.path.join(tmp, name), self.partial / name)
        self.acc.wait_for_everyone()

    def _rng_state(self) -> Dict:
        torch = self.torch
        state = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def save_checkpoint(self, collective: bool = True) -> None:
        """checkpoints/last: adapter, optimizer, scheduler, RNG of every process, step, history."""
        from accelerate.utils import gather_object
        from safetensors.torch import save_file

        torch = self.torch
        collective = collective and self.world > 1
        rngs = gather_object([self._rng_state()]) if collective else [self._rng_state()]
        if self.main:
            ck = self.partial / CHECKPOINT_DIR
            tmp, last, old = ck / "last.tmp", ck / "last", ck / "last.old"
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
            save_file(self._adapter_state(), str(tmp / "adapter.safetensors"))
            torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
            torch.save(self.scheduler.state_dict(), tmp / "scheduler.pt")
            torch.save({"rng": rngs}, tmp / "rng.pt")
            state = {
                "config_hash": self.short, "step": self.step, "micro_batch": self.micro, "history": self.history,
                "best": self.best, "best_step": self.best_step, "bad_evals": self.bad_evals,
                "zero_shot": self.zero_shot, "loss_sum": self.loss_sum, "loss_n": self.loss_n,
                "train_seconds": self.train_seconds, "train_samples": self.train_samples, "world": self.world,
            }
            _write_json(tmp / "state.json", state)
            if last.exists():
                if old.exists():
                    shutil.rmtree(old)
                os.replace(last, old)
            os.replace(tmp, last)
            if old.exists():
                shutil.rmtree(old)
        if collective:
            self.acc.wait_for_everyone()

    def resume(self) -> bool:
        """Continue from checkpoints/last when an interrupted run of this config left one."""
        ck = self.partial / CHECKPOINT_DIR
        last = ck / "last" if (ck / "last" / "state.json").is_file() else ck / "last.old"
        if not self.cfg.resume or not (last / "state.json").is_file():
            return False
        torch = self.torch
        peft = require("peft", "sft", "fine-tuning")
        from safetensors.torch import load_file

        try:
            state = json.loads((last / "state.json").read_text(encoding="utf-8"))
            if state.get("config_hash") != self.short:
                raise ValueError("config hash differs")
            adapter = load_file(str(last / "adapter.safetensors"))
            result = peft.set_peft_model_state_dict(self.peft_model, adapter)
            missing = [k for k in result.missing_keys if "lora_" in k]
            if missing or result.unexpected_keys:
                raise ValueError("adapter keys do not match")
            self.optimizer.load_state_dict(torch.load(last / "optimizer.pt", weights_only=True))
            self.scheduler.load_state_dict(torch.load(last / "scheduler.pt", weights_only=True))
            rngs = torch.load(last / "rng.pt", weights_only=True)["rng"]
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise ModelError(f"cannot resume from {last} ({str(exc).splitlines()[0][:120]}); "
                             "rerun with --overwrite to start over") from None
        rng = rngs[self.rank] if self.rank < len(rngs) else rngs[0]
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.step = int(state["step"])
        if self.cfg.auto_batch:
            self.micro = int(state.get("micro_batch", self.micro))
        self.history = list(state.get("history", []))
        self.best, self.best_step = state.get("best"), state.get("best_step")
        self.bad_evals = int(state.get("bad_evals", 0))
        self.zero_shot = state.get("zero_shot")
        self.loss_sum, self.loss_n = float(state.get("loss_sum", 0.0)), int(state.get("loss_n", 0))
        self.train_seconds = float(state.get("train_seconds", 0.0))
        self.train_samples = int(state.get("train_samples", 0))
        if self.cfg.patience and self.bad_evals >= self.cfg.patience:
            self.stopped = "early_stopping"
        self._say(f"resuming {self.partial.name} from step {self.step} of {self.total}")
        return True

    def finish(self) -> SFTResult:
        cfg = self.cfg
        if self.best is None:
            raise ModelError("training produced no valid gauc (validation sets without users having both labels?); "
                             "nothing was saved as complete")
        meta = {
            "recbench_sft_format": "1",
            "config_hash": self.short,
            "name": self.final.name,
            "scheme": cfg.scheme,
            "config": cfg.public(),
            "hash_payload": self.payload,
            "base": base_identity(self.spec, self.net),
            "prompt": {"template": self.template.id, "template_sha256": self.template.sha256,
                       "max_length": cfg.max_length, "chat_template": cfg.chat_template},
            "lora": {"r": cfg.lora_r, "alpha": cfg.lora_alpha, "dropout": cfg.lora_dropout,
                     "target_modules": self.targets, "lora_layers": cfg.lora_layers,
                     "trainable_parameters": int(sum(p.numel() for p in self.params))},
            "training": {"steps": self.step, "steps_per_epoch": self.spe, "max_steps": self.total,
                         "micro_batch": self.micro, "grad_accum": cfg.grad_accum, "world_size": self.world,
                         "effective_batch": self.per_step, "device": str(self.device),
                         "dtype": str(next(self.net.parameters()).dtype).replace("torch.", ""),
                         **self.training_meta()},
            "data": self.data.info,
            "history": self.history,
            "best_valid_gauc": self.best,
            "best_step": self.best_step,
            "zero_shot_valid_gauc": self.zero_shot,
            "beat_untuned": self._beats_untuned(self.best),
            "stopped": self.stopped,
            "memory": peak_memory(self.torch, self.device),
            "timings": {"train_s": round(self.train_seconds, 2),
                        "train_samples_per_s": round(self.train_samples / max(self.train_seconds, 1e-9), 3)},
            "evaluate_with": self._eval_command(),
            **self.extra_meta(),
        }
        from ..results import package_versions, utc_now

        if meta["beat_untuned"] is False:
            self._say(f"tuning did not beat the untuned model: best tuned valid gauc {self._fmt(self.best)} "
                      f"(step {self.best_step}) <= untuned {self._fmt(self.zero_shot)}; the adapter is kept for "
                      "reference, but the untuned model is the better one (recbench_sft.json: beat_untuned false)")
        mem = meta["memory"]
        if mem:
            self._say("peak memory: " + ", ".join(f"{k} {v:,.0f}" for k, v in mem.items()))
        meta["packages"] = package_versions()
        meta["created"] = utc_now()
        if self.main:
            _write_json(self.partial / META_FILE, meta)
            shutil.rmtree(self.partial / CHECKPOINT_DIR, ignore_errors=True)
            for f in self.partial.iterdir():  # temp-file writes leave 0600; adapters are meant to be shared
                if f.is_file():
                    os.chmod(f, 0o644)
            (self.partial / COMPLETE).write_text(f"{self.short}\n", encoding="utf-8")
            old = self.final.with_name(self.final.name + ".old")
            if self.final.exists():
                if old.exists():
                    shutil.rmtree(old)
                os.replace(self.final, old)
            os.replace(self.partial, self.final)
            if old.exists():
                shutil.rmtree(old)
        self.acc.wait_for_everyone()
        return SFTResult(
            adapter_path=str(self.final), name=self.final.name, hash=self.short, model=cfg.model, scheme=cfg.scheme,
            best_valid_gauc=self.best, best_step=self.best_step, zero_shot_valid_gauc=self.zero_shot,
            history=self.history, stopped=self.stopped, reused=False,
            train_samples_per_s=meta["timings"]["train_samples_per_s"], config=cfg.public(),
            beat_untuned=meta["beat_untuned"], memory=meta["memory"])

    def _eval_command(self) -> str:
        cfg = self.cfg
        parts = ["recbench zero-shot", f"--model {cfg.model}", f"--scheme {cfg.scheme}",
                 f"--scenario {','.join(cfg.valid_scenarios)}", f"--adapter {self.final}"]
        if cfg.data_seed != DEFAULT_SEED:
            parts.append(f"--seed {cfg.data_seed}")
        if cfg.template:
            parts.append(f"--template {cfg.template}")
        if get_scheme(cfg.scheme).uses_chat_template:
            parts.append("--chat-template" if cfg.chat_template else "--no-chat-template")
        if cfg.max_length:
            parts.append(f"--max-length {cfg.max_length}")
        return " ".join(parts)

    # -- small things ----------------------------------------------------------------------------
    def _say(self, msg: str) -> None:
        if self.progress and self.main:
            from tqdm.auto import tqdm

            tqdm.write(f"recbench: {msg}", file=sys.stderr)

    @staticmethod
    def _fmt(v: Optional[float]) -> str:
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


class GenerativeTrainer(_Trainer):
    """LoRA on a causal (or masked) LM; BCE on P(Yes) from the two label logits."""

    def load(self) -> None:
        from ..scorers.hf_common import load_pretrained, load_tokenizer
        from ..scorers.hf_generative import HFGenerativeScorer
        from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

        cfg = self.cfg
        opts = load_options(cfg, self.acc)
        self.task_type = None if self.spec.kind == "masked" else "CAUSAL_LM"
        tokenizer = load_tokenizer(self.spec, opts)
        auto = AutoModelForMaskedLM if self.spec.kind == "masked" else AutoModelForCausalLM
        try:
            model, self.device = load_pretrained(auto, self.spec, opts)
        except ValueError as exc:
            raise ModelError(f"model '{self.spec.name}' cannot serve the generative scheme: {exc}") from None
        if cfg.quantization:
            model = prepare_quantized(model, cfg)
        self.device = next(model.parameters()).device
        eval_bs = cfg.eval_batch_size or 2 * cfg.micro_batch()
        self.scorer = HFGenerativeScorer(self.spec, opts, model=model, tokenizer=tokenizer, batch_size=eval_bs,
                                         chat_template=cfg.chat_template, prefix_reuse=True)
        self.model = model
        self.labels = self.scorer.labels

    def extra_meta(self) -> Dict:
        return {"labels": self.labels.as_dict()}

    # -- prefix packing (recbench/sft/packing.py) -------------------------------------------------
    def setup(self) -> None:
        super().setup()
        self.packed, self.pack_keep, self.pack_note = False, False, "off (--packing off)"
        if self.cfg.packing != "off":
            self.packed, self.pack_keep, self.pack_note = self.packing_support()
            if not self.packed:
                self.pack_note = f"off: {self.pack_note}; the plain path runs every prompt in full"
        lengths = [len(x) for x in self.data.train_ids]
        self.max_len = max(lengths) if lengths else 1
        self.mean_len = max(1, -(-sum(lengths) // len(lengths))) if lengths else 1
        emb = self.net.get_input_embeddings().weight.dtype
        self.mask_dtype = emb if emb.is_floating_point else self.torch.float32
        self._say("prefix packing: " + (f"on ({self.pack_note})" if self.packed else self.pack_note))

    def packing_support(self):
        """(supported, use logits_to_keep, why): static checks, then a probe on training tokens."""
        from .packing import check_support

        sc = self.scorer
        return check_support(self.torch, self.net, takes_pos=sc._takes_pos, takes_keep=sc._takes_keep,
                             masked=sc.masked, pad_id=sc.pad_id, probe_ids=self.data.train_ids[:1] +
                             self.data.train_ids[-1:])

    def training_meta(self) -> Dict:
        return {"packing": self.packed, "packing_note": self.pack_note,
                "batch_order": "users (each user's candidates together, users shuffled)"}

    def batch_groups(self) -> Optional[List[int]]:
        return list(self.data.train_groups) or None

    def pack_limits(self):
        """(tokens per packed row, padded tokens per forward pass). A forward pass holds at most
        the tokens a plain micro-batch of average prompts holds (batch-size x mean length), so
        packing lowers peak memory as well as time; both shrink with the micro-batch on
        out-of-memory (a row always takes at least one pack, a pass one row)."""
        from .packing import MIN_ROW_TOKENS, PACK_FACTOR

        budget = self.micro * self.mean_len
        return min(max(PACK_FACTOR * self.max_len, MIN_ROW_TOKENS), budget), budget

    def chunks(self, mine: List[int]) -> List[List[int]]:
        if not self.packed:
            return super().chunks(mine)
        from .packing import plan_chunks

        row, budget = self.pack_limits()
        d = self.data
        return plan_chunks(mine, d.train_ids, d.train_prefix, d.train_groups, row, budget)

    def loss_on(self, idx: Sequence[int]):
        if self.packed:
            return self.packed_loss(idx)
        return self.plain_loss(idx)

    def packed_loss(self, idx: Sequence[int]):
        """BCE on P(Yes) over packed rows: each user's prefix once, its candidates behind it."""
        from .packing import answer_logits, pack_rows, packed_inputs

        torch, d = self.torch, self.data
        rows = pack_rows(idx, d.train_ids, d.train_prefix, d.train_groups, self.pack_limits()[0])
        batch = packed_inputs(torch, rows, self.scorer.pad_id, self.mask_dtype, self.device)
        last = answer_logits(torch, self.ddp, batch, self.pack_keep)
        y = torch.tensor(d.labels[batch.samples], dtype=torch.float32, device=self.device)
        diff = last[:, self.labels.yes_id].float() - last[:, self.labels.no_id].float()
        return torch.nn.functional.binary_cross_entropy_with_logits(diff, y)

    def plain_loss(self, idx: Sequence[int]):
        """BCE on P(Yes), every prompt in full, padded and read exactly as the scorer does."""
        torch = self.torch
        sc = self.scorer
        seqs = [self.data.train_ids[i] for i in idx]
        y = torch.tensor(self.data.labels[list(idx)], dtype=torch.float32, device=self.device)
        last = answer_logits(torch, self.ddp, seqs, sc.pad_id, self.device, masked=sc.masked,
                             mask_token_id=sc.tokenizer.mask_token_id, takes_pos=sc._takes_pos,
                             takes_keep=sc._takes_keep)
        diff = last[:, self.labels.yes_id].float() - last[:, self.labels.no_id].float()  # logit of P(Yes)
        return torch.nn.functional.binary_cross_entropy_with_logits(diff, y)

    def score_valid(self, vs, lo: int, hi: int) -> np.ndarray:
        self.scorer._prefix_cache.clear()  # prefix KV caches are stale after an update
        scores: List[float] = []
        users = vs.users
        step = 64
        start = lo
        with self._bar(hi - lo, f"valid {vs.scenario}") as bar:
            while start < hi:  # chunks ending at a user boundary keep each user's prefix together
                end = min(hi, start + step)
                while end < hi and users[end] == users[end - 1]:
                    end += 1
                scores.extend(self.scorer.score_detailed(vs.requests[start:end])[0])
                bar.update(end - start)
                start = end
        self.scorer._prefix_cache.clear()
        return np.asarray(scores, dtype=np.float64)


class DiscriminativeTrainer(_Trainer):
    """LoRA on an encoder; a similarity objective between user and item texts."""

    task_type = "FEATURE_EXTRACTION"

    def load(self) -> None:
        from ..scorers.hf_embedding import HFEmbeddingScorer

        cfg = self.cfg
        if cfg.quantization:
            raise ConfigError("--quantization is supported for the generative scheme only")
        opts = load_options(cfg, self.acc)
        eval_bs = cfg.eval_batch_size or 2 * cfg.micro_batch()
        self.scorer = HFEmbeddingScorer(self.spec, opts, batch_size=eval_bs)
        self.model = self.scorer.model
        self.device = next(self.model.parameters()).device
        self.loss_name = cfg.effective_loss()
        if self.scorer.st_model is not None:  # LoRA on the encoder trains; a Dense head stays as loaded
            for module in list(self.scorer.st_model)[1:]:
                module.requires_grad_(False)

    def forward_module(self):
        """A sentence-transformers model runs whole (encoder, Pooling, Dense, Normalize, ...), as
        the scorer runs it; DDP then wraps the SentenceTransformer around the network."""
        return self.scorer.st_model if self.scorer.st_model is not None else self.net

    def extra_meta(self) -> Dict:
        return {"objective": {"loss": self.loss_name, "temperature": self.cfg.temperature, "margin": self.cfg.margin,
                              "pooling": self.scorer.pooling}}

    def embed_pairs(self, users: List[str], items: List[str]):
        """Differentiable user and item embeddings: the scorer's own forward (vectors) on the
        scorer's own prefixed texts, through the DDP wrapper; one forward pass over both (DDP
        allows one forward per backward)."""
        sc = self.scorer
        vec = sc.vectors(sc.prefixed(users, "user") + sc.prefixed(items, "item"), forward=self.ddp)
        return vec[: len(users)], vec[len(users):]

    def loss_on(self, idx: Sequence[int]):
        torch = self.torch
        F = torch.nn.functional
        pairs = [self.data.train_pairs[i] for i in idx]
        y = torch.tensor(self.data.labels[list(idx)], dtype=torch.float32, device=self.device)
        u, v = self.embed_pairs([p[0] for p in pairs], [p[1] for p in pairs])
        cos = F.cosine_similarity(u.float(), v.float(), dim=-1)
        if self.loss_name == "cosine":  # sentence-transformers CosineSimilarityLoss
            return F.mse_loss(cos, y)
        if self.loss_name == "contrastive":  # margin contrastive loss on cosine distance
            d = 1.0 - cos
            return (y * d.pow(2) + (1 - y) * F.relu(self.cfg.margin - d).pow(2)).mean() / 2
        return F.binary_cross_entropy_with_logits(cos / self.cfg.temperature, y)

    def score_valid(self, vs, lo: int, hi: int) -> np.ndarray:
        users, items = vs.user_texts[lo:hi], vs.item_texts[lo:hi]
        du, di = list(dict.fromkeys(users)), list(dict.fromkeys(items))
        if not du:
            return np.zeros(0)
        step = 256
        with self._bar(len(du) + len(di), f"valid {vs.scenario}", unit="text") as bar:
            parts = {}
            for kind, texts in (("user", du), ("item", di)):
                out = []
                for a in range(0, len(texts), step):
                    out.append(self.scorer.embed(texts[a:a + step], kind))
                    bar.update(len(texts[a:a + step]))
                parts[kind] = np.concatenate(out, axis=0).astype(np.float64)
        U, V = parts["user"], parts["item"]
        U /= np.clip(np.linalg.norm(U, axis=1, keepdims=True), 1e-12, None)
        V /= np.clip(np.linalg.norm(V, axis=1, keepdims=True), 1e-12, None)
        ui = {t: k for k, t in enumerate(du)}
        ii = {t: k for k, t in enumerate(di)}
        return np.einsum("ij,ij->i", U[[ui[t] for t in users]], V[[ii[t] for t in items]])


__all__ = ["SFTConfig", "SFTResult", "finetune", "finetune_from_bench", "run_name"]
