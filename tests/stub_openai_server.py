"""A scriptable OpenAI-compatible stub server for tests (http.server in a thread).

Answers are deterministic functions of the prompt, so tests know the right score:
`expected_p_yes(prompt)`. Faults are queued per scoring request (`stub.faults.append(...)`):
("429", seconds) with Retry-After, "500", "400" (a one-off refusal), "timeout" (answers after
`slow_s`), "hang" (answers after `hang_s`, long after any test), "badjson", "nologprobs" (a
200 answer whose logprobs field is missing), "drop" (closes the connection without an
answer) and "ok" (no fault: a placeholder to put faults later in the queue).
`die_after = N` drops every scoring request after N good answers, like a server that went
away mid-run. Every POST is recorded.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional, Tuple

SCORING = ("/v1/completions", "/v1/chat/completions", "/v1/embeddings")


def _unit(text: str, salt: str) -> float:
    h = hashlib.sha256((salt + "\x00" + text).encode("utf-8")).digest()
    return (int.from_bytes(h[:8], "big") + 0.5) / 2.0 ** 64


def label_logprobs(prompt: str) -> Tuple[float, float]:
    """(log P(Yes), log P(No)) the stub assigns to a prompt."""
    return math.log(0.05 + 0.45 * _unit(prompt, "yes")), math.log(0.05 + 0.45 * _unit(prompt, "no"))


def expected_p_yes(prompt: str) -> float:
    y, n = label_logprobs(prompt)
    return 1.0 / (1.0 + math.exp(n - y))


def expected_vector(text: str, dim: int = 8) -> List[float]:
    return [(_unit(text, f"d{i}") - 0.5) for i in range(dim)]


def text_answer(prompt: str) -> str:
    """The stub's answer in text mode: mostly Yes/No, sometimes something unparseable."""
    if _unit(prompt, "invalid") < 0.15:
        return "I think maybe"
    return "Yes" if expected_p_yes(prompt) >= 0.5 else "No"


class StubOpenAI:
    def __init__(self, models=("stub-model",), *, completions: bool = True, completion_logprobs: bool = True,
                 echo: bool = True, echo_shift: bool = False, chat: bool = True, chat_logprobs: bool = True,
                 reject_logprobs: bool = False,
                 embeddings: bool = True, hide_labels: Tuple[str, ...] = (), require_key: Optional[str] = None,
                 slow_s: float = 1.0, hang_s: float = 60.0, list_models: bool = True):
        self.models = list(models)
        self.completions = completions
        self.completion_logprobs = completion_logprobs
        self.echo = echo
        self.echo_shift = echo_shift  # echo log-probs of the wrong position (llama-cpp-python's bug)
        self.chat = chat
        self.chat_logprobs = chat_logprobs
        self.reject_logprobs = reject_logprobs
        self.embeddings = embeddings
        self.hide_labels = set(hide_labels)
        self.require_key = require_key
        self.slow_s = slow_s
        self.hang_s = hang_s
        self.list_models = list_models
        self.faults: List = []
        self.die_after: Optional[int] = None
        self.good = 0
        self.posts: List[Dict] = []  # {"path", "body", "time", "outcome"}
        self.headers_seen: List[str] = []
        self.lock = threading.Lock()
        self._server: Optional[ThreadingHTTPServer] = None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> "StubOpenAI":
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                stub._get(self)

            def do_POST(self):
                stub._post(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # -- bookkeeping ----------------------------------------------------------------------
    def scored_prompts(self, outcome: Optional[str] = "ok") -> List[str]:
        """Prompts of scoring requests (not echo/probe), optionally only those answered."""
        out = []
        for p in self.posts:
            body = p["body"]
            if p["path"] == "/v1/embeddings" or body.get("echo"):
                continue
            prompt = body.get("prompt")
            if prompt is None and body.get("messages"):
                prompt = body["messages"][-1]["content"]
            if outcome is None or p["outcome"] == outcome:
                out.append(prompt)
        return out

    # -- HTTP -----------------------------------------------------------------------------
    def _send(self, h, status: int, doc=None, raw: Optional[bytes] = None, headers: Optional[Dict] = None):
        body = raw if raw is not None else json.dumps(doc).encode("utf-8")
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _auth_ok(self, h) -> bool:
        auth = h.headers.get("Authorization", "")
        with self.lock:
            self.headers_seen.append(auth)
        if self.require_key and auth != f"Bearer {self.require_key}":
            got = auth.replace("Bearer ", "")
            masked = got[:4] + "*" * max(0, len(got) - 8) + got[-4:]
            self._send(h, 401, {"error": {"message": f"Incorrect API key provided: {masked}.",
                                          "type": "invalid_request_error", "code": "invalid_api_key"}})
            return False
        return True

    def _get(self, h):
        if not self._auth_ok(h):
            return
        if h.path.rstrip("/") == "/v1/models" and self.list_models:
            self._send(h, 200, {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "stub"}
                                                           for m in self.models]})
        else:
            self._send(h, 404, {"detail": "Not Found"})

    def _post(self, h):
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        record = {"path": h.path, "body": body, "time": time.monotonic(), "outcome": "ok"}
        with self.lock:
            self.posts.append(record)
        if not self._auth_ok(h):
            record["outcome"] = "401"
            return
        fault = None
        with self.lock:
            if h.path in SCORING:
                if self.die_after is not None and self.good >= self.die_after:
                    fault = "drop"
                elif self.faults:
                    fault = self.faults.pop(0)
        if fault == "ok":  # a placeholder: this request is answered normally
            fault = None
        if fault is not None:
            record["outcome"] = fault if isinstance(fault, str) else fault[0]
            if fault == "drop":
                h.close_connection = True
                try:
                    h.connection.shutdown(2)
                except OSError:
                    pass
                return
            if fault == "500":
                return self._send(h, 500, {"error": {"message": "internal error", "type": "server_error"}})
            if fault == "400":
                return self._send(h, 400, {"error": {"message": "bad request (a glitch)",
                                                     "type": "invalid_request_error"}})
            if fault == "badjson":
                return self._send(h, 200, raw=b'{"choices": [ {"text": "Yes", ')
            if fault == "timeout":
                time.sleep(self.slow_s)  # the client has given up by now
            elif fault == "hang":
                time.sleep(self.hang_s)
            elif isinstance(fault, tuple) and fault[0] == "429":
                return self._send(h, 429, {"error": {"message": "Rate limit reached", "type": "requests"}},
                                  headers={"Retry-After": str(fault[1])})
        model = body.get("model")
        if h.path in SCORING and model not in self.models:
            record["outcome"] = "404"
            return self._send(h, 404, {"error": {"message": f"The model `{model}` does not exist",
                                                 "type": "invalid_request_error", "code": "model_not_found"}})
        if h.path == "/v1/completions" and self.completions:
            doc = self._completion(body)
        elif h.path == "/v1/chat/completions" and self.chat:
            doc = self._chat(body)
        elif h.path == "/v1/embeddings" and self.embeddings:
            doc = self._embeddings(body)
        else:
            record["outcome"] = "404"
            return self._send(h, 404, {"detail": "Not Found"})
        if isinstance(doc, tuple):
            record["outcome"] = str(doc[0])
            return self._send(h, doc[0], doc[1])
        if fault == "nologprobs":
            for choice in doc.get("choices") or []:
                choice.pop("logprobs", None)
        if record["outcome"] == "ok":
            with self.lock:
                self.good += 1
        self._send(h, 200, doc)

    # -- answers --------------------------------------------------------------------------
    @staticmethod
    def _usage(prompt: str, out: int = 1) -> Dict:
        n = max(1, len(prompt) // 4)
        return {"prompt_tokens": n, "completion_tokens": out, "total_tokens": n + out}

    def _completion(self, body: Dict):
        prompt = body.get("prompt")
        if isinstance(prompt, list):
            prompt = prompt[0]
        wants = body.get("logprobs")
        if wants is not None and self.reject_logprobs:
            return 400, {"error": {"message": "logprobs is not supported", "type": "invalid_request_error"}}
        if body.get("echo"):
            if not self.echo:
                return 400, {"error": {"message": "echo is not supported with logprobs"}}
            for label in (" Yes", " No", "Yes", "No"):
                if prompt.endswith(label):
                    base = prompt[: -len(label)]
                    y, n = label_logprobs(base)
                    lp = y if "Yes" in label else n
                    if self.echo_shift:
                        lp -= 4.0
                    return {"id": "cmpl-echo", "object": "text_completion", "created": 0, "model": body["model"],
                            "choices": [{"index": 0, "text": prompt + "\n", "finish_reason": "length",
                                         "logprobs": {"tokens": [base, label, "\n"], "token_logprobs": [None, lp, -0.1],
                                                      "text_offset": [0, len(base), len(prompt)],
                                                      "top_logprobs": [None, {label: lp}, {"\n": -0.1}]}}],
                            "usage": self._usage(prompt)}
        y, n = label_logprobs(prompt)
        top = {" Yes": y, " No": n, " Maybe": math.log(0.01), "\n": math.log(0.02)}
        for label in self.hide_labels:
            top.pop(label, None)
        text = " Yes" if y >= n else " No"
        if wants is not None and self.completion_logprobs:
            logprobs = {"tokens": [text], "token_logprobs": [top.get(text, min(top.values()))],
                        "text_offset": [len(prompt)], "top_logprobs": [dict(list(top.items())[: int(wants) or 1])]}
        elif wants is not None:
            logprobs = None
        else:
            logprobs = None
            text = " " + text_answer(prompt)
        return {"id": "cmpl-1", "object": "text_completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "text": text, "finish_reason": "length", "logprobs": logprobs}],
                "usage": self._usage(prompt)}

    def _chat(self, body: Dict):
        prompt = body["messages"][-1]["content"]
        if body.get("logprobs") and self.reject_logprobs:
            return 400, {"error": {"message": "logprobs is not supported by this model",
                                   "type": "invalid_request_error"}}
        y, n = label_logprobs(prompt)
        if body.get("logprobs") and self.chat_logprobs:
            top = [("Yes", y), ("No", n), ("Maybe", math.log(0.01))]
            top = [(t, lp) for t, lp in top if t not in self.hide_labels]
            answer = "Yes" if y >= n else "No"
            k = int(body.get("top_logprobs") or 1)
            listed = [{"token": t, "logprob": lp, "bytes": None} for t, lp in top[:k]]
            logprobs = {"content": [{"token": answer, "logprob": max(y, n), "bytes": None, "top_logprobs": listed}]}
        else:
            answer = text_answer(prompt)
            logprobs = None
        return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "length",
                             "logprobs": logprobs}],
                "usage": self._usage(prompt)}

    def _embeddings(self, body: Dict):
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        return {"object": "list", "model": body["model"],
                "data": [{"object": "embedding", "index": i, "embedding": expected_vector(t)}
                         for i, t in enumerate(inputs)],
                "usage": {"prompt_tokens": sum(max(1, len(t) // 4) for t in inputs),
                          "total_tokens": sum(max(1, len(t) // 4) for t in inputs)}}
