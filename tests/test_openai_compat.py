"""OpenAI-compatible backends against a local stub server: tiers, faults, resume, secrets, cost."""

from __future__ import annotations

import json
import logging
import math
import signal
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openai")

from recbench import pricing  # noqa: E402
from recbench.cache import ScoreCache, request_key  # noqa: E402
from recbench.cli import main  # noqa: E402
from recbench.config import RunConfig  # noqa: E402
from recbench.errors import ConfigError, ModelError  # noqa: E402
from recbench.models import ModelSpec, resolve_model  # noqa: E402
from recbench.prompts import PromptRequest  # noqa: E402
from recbench.scorers import make_scorer  # noqa: E402
from recbench.scorers.api import OpenAIEmbeddingScorer, OpenAIGenerativeScorer, OpenAITransport  # noqa: E402
from recbench.scorers.api.endpoint import Scrubber, check_base_url  # noqa: E402
from recbench.scorers.api.replies import NO_LOGPROBS, parse_answer  # noqa: E402
from recbench.scorers.api.retry import Notices  # noqa: E402
from recbench.scorers.api.retry import retry_after as _retry_after  # noqa: E402
from recbench.scorers.labels import two_way_softmax  # noqa: E402

from stub_openai_server import StubOpenAI, expected_p_yes, expected_vector, label_logprobs  # noqa: E402

SECRET = "sk-secret-test"
SPEC = ModelSpec("openai:stub-model", "openai", "stub-model", abilities=("logits", "embedding"))
REQUESTS = [PromptRequest(f"User behavior sequence:\n(1) item {u}\n", f"Candidate item: thing {c}\nAnswer (Yes/No):")
            for u in range(3) for c in range(4)]


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch):
    monkeypatch.setattr(OpenAITransport, "RETRY_BASE_S", 0.01)


@pytest.fixture
def stub_factory():
    started = []

    def make(**kw):
        stub = StubOpenAI(**kw).start()
        started.append(stub)
        return stub

    yield make
    for s in started:
        s.stop()


@pytest.fixture
def stub(stub_factory):
    return stub_factory()


def scorer(stub, **kw):
    opts = dict(base_url=stub.url, concurrency=4, max_retries=3, timeout=2.0)
    opts.update(kw)
    return OpenAIGenerativeScorer(SPEC, **opts)


def expected(reqs=REQUESTS):
    return [expected_p_yes(r.text) for r in reqs]


# -- tiers ------------------------------------------------------------------------------------
def test_completions_tier_reads_label_logprobs(stub):
    sc = scorer(stub)
    assert sc.tier == "completions"
    scores, extras = sc.score_detailed(REQUESTS)
    assert scores == pytest.approx(expected(), abs=1e-9)
    y, n = label_logprobs(REQUESTS[0].text)
    assert extras[0]["mass"] == pytest.approx(math.exp(y) + math.exp(n))
    d = sc.diagnostics()
    assert d["tier"] == "completions" and d["label_floors"] == 0 and d["scored"] == len(REQUESTS)
    assert d["api"]["usage"]["requests"] == len(REQUESTS) + 1  # + the tier probe
    assert d["api"]["usage"]["prompt_tokens"] > 0 and d["api"]["usage"]["completion_tokens"] == len(REQUESTS) + 1
    ident = sc.identity()
    assert ident["tier"] == "completions" and ident["endpoint"] == stub.url and ident["model_id"] == "stub-model"
    # requests ask for the answer position's top log-probs, deterministically
    body = stub.posts[-1]["body"]
    assert body["max_tokens"] == 1 and body["temperature"] == 0 and body["logprobs"] == 20


def test_missing_label_read_by_verified_echo(stub_factory):
    stub = stub_factory(hide_labels=(" No",))
    sc = scorer(stub)
    scores, extras = sc.score_detailed(REQUESTS)
    assert scores == pytest.approx(expected(), abs=1e-9)
    d = sc.diagnostics()
    assert d["echo_supported"] is True and d["label_floors"] == 0
    assert d["echo_requests"] == len(REQUESTS) + 1  # one verification + one per prompt


@pytest.mark.parametrize("kind", ["no_echo", "shifted_echo"])
def test_missing_label_gets_floor_when_echo_unusable(stub_factory, kind):
    stub = stub_factory(hide_labels=(" No",), echo=kind != "no_echo", echo_shift=kind == "shifted_echo")
    sc = scorer(stub)
    scores, extras = sc.score_detailed(REQUESTS)
    for r, s, e in zip(REQUESTS, scores, extras):
        y, _ = label_logprobs(r.text)
        floor = min(y, math.log(0.01), math.log(0.02))
        assert s == pytest.approx(1 / (1 + math.exp(floor - y)))
        assert e["floor"] == ["no"]
    d = sc.diagnostics()
    assert d["echo_supported"] is False
    assert d["label_floors"] == len(REQUESTS) and d["floor_rate"] == 1.0


def test_completions_logprobs_capped_at_five_falls_back(stub_factory, monkeypatch):
    stub = stub_factory()
    original = stub._completion

    def capped(body):
        if (body.get("logprobs") or 0) > 5:
            return 400, {"error": {"message": "logprobs must be <= 5"}}
        return original(body)

    monkeypatch.setattr(stub, "_completion", capped)
    sc = scorer(stub)
    assert sc.tier == "completions"
    scores, _ = sc.score_detailed(REQUESTS)
    assert scores == pytest.approx(expected(), abs=1e-9)
    assert stub.posts[-1]["body"]["logprobs"] == 5


def test_chat_tier_when_no_completions_endpoint(stub_factory):
    stub = stub_factory(completions=False)
    sc = scorer(stub)
    assert sc.tier == "chat"
    scores, _ = sc.score_detailed(REQUESTS)
    assert scores == pytest.approx(expected(), abs=1e-9)
    body = stub.posts[-1]["body"]
    assert body["max_tokens"] == 1 and body["temperature"] == 0 and body["logprobs"] is True
    assert body["top_logprobs"] == 20
    assert sc.label_info()["tier"] == "chat"


def test_chat_tier_floor_is_counted(stub_factory):
    stub = stub_factory(completions=False, hide_labels=("No",))
    sc = scorer(stub)
    scores, extras = sc.score_detailed(REQUESTS)
    assert all(e["floor"] == ["no"] for e in extras)
    assert sc.diagnostics()["label_floors"] == len(REQUESTS)
    assert all(s > 0.5 for s in scores)  # P(No) floored at the smallest listed value


def test_text_tier_parses_answers_and_marks_binary(stub_factory):
    stub = stub_factory(completions=False, chat_logprobs=False)
    sc = scorer(stub)
    assert sc.tier == "text"
    scores, extras = sc.score_detailed(REQUESTS)
    assert set(scores) <= {0.0, 0.5, 1.0}
    invalid = sum(1 for e in extras if e.get("invalid"))
    assert [s == 0.5 for s in scores].count(True) == invalid
    d = sc.diagnostics()
    assert d["binary"] is True and d["invalid_answers"] == invalid
    assert d["invalid_answer_rate"] == pytest.approx(invalid / len(REQUESTS))


def test_parse_answer():
    assert parse_answer("Yes.") == 1.0 and parse_answer(" no, because") == 0.0 and parse_answer("YES") == 1.0
    assert parse_answer("Maybe") is None and parse_answer("") is None and parse_answer(None) is None
    assert parse_answer("Not sure") is None and parse_answer("yesterday") is None


@pytest.mark.parametrize("tier,stub_kw", [
    ("completions", {"completion_logprobs": False}),
    ("chat", {"chat_logprobs": False}),
    ("chat", {"reject_logprobs": True}),
])
def test_forced_tier_without_logprobs_is_one_clear_error(stub_factory, tier, stub_kw):
    stub = stub_factory(**stub_kw)
    sc = scorer(stub, tier=tier)
    with pytest.raises(ModelError) as err:
        sc.score_detailed(REQUESTS[:2])
    msg = str(err.value)
    assert "\n" not in msg and f"{tier} tier" in msg and "--api-tier" in msg


def test_auto_tier_falls_to_text_when_logprobs_rejected(stub_factory):
    stub = stub_factory(reject_logprobs=True)
    assert scorer(stub).tier == "text"


# -- faults ---------------------------------------------------------------------------------
def test_429_retry_after_is_honoured_and_shown(stub, capsys):
    sc = scorer(stub, concurrency=1)
    capsys.readouterr()
    stub.faults.append(("429", 1))
    scores, _ = sc.score_detailed(REQUESTS[:2])
    assert scores == pytest.approx(expected(REQUESTS[:2]), abs=1e-9)
    times = [p["time"] for p in stub.posts if p["path"] == "/v1/completions"]
    outcomes = [p["outcome"] for p in stub.posts if p["path"] == "/v1/completions"]
    first = outcomes.index("429")
    assert times[first + 1] - times[first] >= 0.95  # waited as told, not the 10 ms backoff
    usage = sc.diagnostics()["api"]["usage"]
    assert usage["retries"] == 1 and usage["retries_by_reason"] == {"HTTP 429": 1}
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("recbench: waiting:")
    assert "HTTP 429" in err[0] and "retrying in 1.0s" in err[0] and stub.url in err[0]


def test_retry_after_header_forms():
    assert _retry_after({"retry-after": "2"}) == 2.0
    assert _retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert _retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert _retry_after({}) is None and _retry_after({"retry-after": "soon"}) is None


def test_transient_faults_recovered_with_correct_results(stub):
    sc = scorer(stub, concurrency=1, timeout=0.4, max_retries=5)
    stub.slow_s = 0.8
    stub.faults.extend(["500", "timeout", "badjson", "drop", ("429", 0)])
    scores, _ = sc.score_detailed(REQUESTS)
    assert scores == pytest.approx(expected(), abs=1e-9)
    usage = sc.diagnostics()["api"]["usage"]
    assert usage["retries"] == 5 and sum(usage["retries_by_reason"].values()) == 5
    assert {"HTTP 500", "timeout", "HTTP 429", "connection"} <= set(usage["retries_by_reason"])
    assert [p["outcome"] for p in stub.posts[1:6]] == ["500", "timeout", "badjson", "drop", "429"]


def test_concurrent_faults_recovered_and_notices_rate_limited(stub, capsys):
    sc = scorer(stub, concurrency=8, max_retries=4)
    capsys.readouterr()
    stub.faults.extend(["500", "drop", "badjson", "500", ("429", 0), "drop"])
    scores, _ = sc.score_detailed(REQUESTS)
    assert scores == pytest.approx(expected(), abs=1e-9)
    assert sc.diagnostics()["api"]["usage"]["retries"] == 6
    waits = [line for line in capsys.readouterr().err.splitlines() if "waiting:" in line]
    assert 1 <= len(waits) <= 2  # six retries within a second: not six lines


def test_notices_rate_limited(capsys):
    notices = Notices(every_s=0.3)
    shown = [notices.say(f"waiting {i}", rate_limited=True) for i in range(50)]
    assert shown.count(True) == 1
    time.sleep(0.35)
    assert notices.say("waiting again", rate_limited=True)
    assert notices.say("a decision")  # not rate-limited
    err = capsys.readouterr().err.splitlines()
    assert err == ["recbench: waiting 0", "recbench: waiting again (+49 similar not shown)", "recbench: a decision"]


def test_persistent_failure_is_one_line(stub):
    sc = scorer(stub, concurrency=1, max_retries=2)
    stub.faults.extend(["500"] * 3)
    with pytest.raises(ModelError) as err:
        sc.score_detailed(REQUESTS[:1])
    msg = str(err.value)
    assert "\n" not in msg and "failed after 3 attempt(s)" in msg and "HTTP 500" in msg and "rerun" in msg


def test_long_retry_after_stops_with_clear_line(stub, monkeypatch):
    monkeypatch.setattr(OpenAITransport, "MAX_WAIT_S", 5.0)
    sc = scorer(stub, concurrency=1)
    stub.faults.append(("429", 3600))
    with pytest.raises(ModelError, match="asks to wait 3600s"):
        sc.score_detailed(REQUESTS[:1])


def _cache_rows(path: Path):
    con = sqlite3.connect(str(path))
    try:
        return con.execute("SELECT key FROM scores").fetchall()
    finally:
        con.close()


def _score_like_the_runner(sc, cache: ScoreCache, ns: str, reqs):
    """The runner's side of the contract: look up cached keys, send only the misses, write each
    answer to the cache the moment on_result reports it. Returns (scores, number cached before)."""
    keys = [request_key(ns, r.text) for r in reqs]
    found = cache.get_scores(keys)
    todo = [i for i, k in enumerate(keys) if k not in found]

    def on_result(j, score, extra):
        cache.put_scores({keys[todo[j]]: score}, {keys[todo[j]]: extra})

    sc.begin_scenario()
    sc.score_detailed([reqs[i] for i in todo], on_result=on_result)
    found = cache.get_scores(keys)
    return [found[k] for k in keys], len(reqs) - len(todo)


def test_dropped_mid_run_then_resume_sends_nothing_twice(stub, tmp_path):
    cache = ScoreCache(tmp_path / "scores.sqlite")
    ns = "test-ns"
    sc = scorer(stub, concurrency=3, max_retries=1)
    stub.die_after = stub.good + 5  # the server goes away after five more answers
    with pytest.raises(ModelError) as err:
        _score_like_the_runner(sc, cache, ns, REQUESTS)
    assert "\n" not in str(err.value) and "rerun" in str(err.value)
    answered = [p for p in stub.scored_prompts() if p != "Is the sky blue on a clear day? Answer (Yes/No):"]
    assert len(answered) == 5
    assert cache.count() == 5  # every answer reached the cache as it arrived, before the failure
    stub.die_after = None
    stub.posts.clear()
    sc2 = scorer(stub, concurrency=3, tier="completions")  # a fresh process would do the same
    scores, cached = _score_like_the_runner(sc2, cache, ns, REQUESTS)
    assert scores == pytest.approx(expected(), abs=1e-9) and cached == 5
    resent = stub.scored_prompts(outcome=None)
    assert sorted(resent) == sorted(r.text for r in REQUESTS if r.text not in answered)  # nothing twice
    keys = [k for (k,) in _cache_rows(tmp_path / "scores.sqlite")]
    assert len(keys) == len(set(keys)) == len(REQUESTS)
    assert set(keys) == {request_key(ns, r.text) for r in REQUESTS}
    assert sc2.diagnostics()["api"]["usage"]["requests"] == len(REQUESTS) - 5
    cache.close()


def test_on_result_for_every_index_as_answers_arrive(stub):
    sc = scorer(stub, concurrency=4)
    reqs = REQUESTS[:5] + [REQUESTS[1], REQUESTS[3], REQUESTS[1]]  # duplicates are sent once
    seen, threads = {}, set()
    lock = threading.Lock()

    def on_result(i, score, extra):
        with lock:
            assert i not in seen
            seen[i] = (score, extra)
            threads.add(threading.current_thread().name)

    scores, extras = sc.score_detailed(reqs, on_result=on_result)
    assert sorted(seen) == list(range(len(reqs)))
    assert [seen[i][0] for i in range(len(reqs))] == scores == pytest.approx(expected(reqs), abs=1e-9)
    assert [seen[i][1] for i in range(len(reqs))] == extras and all("mass" in e for e in extras)
    assert len(stub.scored_prompts()) == 1 + 5  # the probe + each distinct text once
    assert all(t.startswith("recbench-api") for t in threads)


def test_begin_scenario_resets_usage_not_run_totals(stub):
    sc = scorer(stub)
    sc.score_detailed(REQUESTS[:3])
    sc.begin_scenario()
    sc.score_detailed(REQUESTS[3:5])
    d = sc.diagnostics()
    assert d["scored"] == 2 and d["api"]["usage"]["requests"] == 2
    assert d["api"]["usage_run_total"]["requests"] == 1 + 5  # the probe + both calls


def test_cli_run_killed_and_resumed(stub_factory, tmp_path, monkeypatch, capsys):
    stub = stub_factory(models=("smollm2",))
    monkeypatch.setenv("RECBENCH_CACHE", str(tmp_path / "cache"))
    args = ["zero-shot", "--model", "openai:smollm2", "--base-url", stub.url, "--scheme", "generative",
            "--limit", "20", "--output", str(tmp_path / "out"), "--quiet", "--max-retries", "1", "--concurrency", "4"]
    stub.die_after = 12  # probe + 11 answers, then the server is gone
    assert main(args) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("recbench: error:") and sum("error" in line for line in err) == 1
    assert "completions tier" in err[0]  # the tier decision, then (rate-limited) waits, then the error
    probe = "Is the sky blue on a clear day? Answer (Yes/No):"
    first = [p for p in stub.scored_prompts() if p != probe]
    assert len(first) == 11
    stub.die_after = None
    n_first = len(stub.posts)
    assert main(args) == 0
    bodies = [stub.posts[i]["body"] for i in range(n_first, len(stub.posts))]
    second = [b["prompt"] for b in bodies if b.get("prompt") and b["prompt"] != probe]
    assert len(second) == len(set(second)) == 9 and not set(first) & set(second)  # nothing paid twice
    res = json.loads((tmp_path / "out" / "openai-smollm2" / "generative" / "demo.json").read_text())
    assert res["meta"]["n"] == 20 and res["meta"]["scorer"]["tier"] == "completions"
    assert res["meta"]["timings"]["cached"] == 11
    rows = _cache_rows(tmp_path / "cache" / "scores.sqlite")
    assert len(rows) == len(set(rows))
    # the same run once more sends nothing
    before = len(stub.posts)
    assert main(args) == 0
    assert [p for p in stub.posts[before:] if "sky blue" not in json.dumps(p["body"])] == []


# -- embeddings -----------------------------------------------------------------------------
def test_embeddings_each_distinct_text_once(stub):
    emb = OpenAIEmbeddingScorer(SPEC, base_url=stub.url, batch_size=2, concurrency=3)
    texts = ["alpha", "beta", "alpha", "gamma", "beta", "delta", "epsilon"]
    vecs = emb.embed(texts, "item")
    assert vecs.shape == (7, 8) and vecs.dtype == np.float32
    for t, v in zip(texts, vecs):
        assert v == pytest.approx(np.asarray(expected_vector(t), dtype=np.float32))
    sent = [t for p in stub.posts if p["path"] == "/v1/embeddings" for t in p["body"]["input"]]
    assert sorted(sent) == sorted(set(texts))
    assert all(p["body"]["encoding_format"] == "float" for p in stub.posts if p["path"] == "/v1/embeddings")
    d = emb.diagnostics()
    assert d["embedding_dim"] == 8 and d["texts_embedded"] == 5 and d["api"]["usage"]["requests"] == 3
    emb.begin_scenario()
    assert emb.diagnostics()["texts_embedded"] == 0 and emb.diagnostics()["api"]["usage"]["requests"] == 0


def test_embedding_inputs_truncated_to_limit(stub):
    emb = OpenAIEmbeddingScorer(SPEC, base_url=stub.url, max_length=100)
    long = "word " * 2000
    emb.embed([long, "short"], "user")
    sent = [t for p in stub.posts if p["path"] == "/v1/embeddings" for t in p["body"]["input"]]
    assert pricing.estimate_tokens(sent[0]) <= emb.context_budget < 100 and sent[1] == "short"
    assert emb.diagnostics()["inputs_truncated"] == 1


def test_token_level_embeddings_refused_clearly(stub, monkeypatch):
    monkeypatch.setattr(stub, "_embeddings", lambda body: {"object": "list", "data": [
        {"index": i, "embedding": [[0.1, 0.2], [0.3, 0.4]]} for i, _ in enumerate(body["input"])]})
    emb = OpenAIEmbeddingScorer(SPEC, base_url=stub.url)
    with pytest.raises(ModelError, match="one vector per token"):
        emb.embed(["a"], "user")


def test_python_api_with_base_url(stub_factory, tmp_path):
    from recbench import RecBench

    stub = stub_factory(models=("smollm2",))
    bench = RecBench(model="openai:smollm2", base_url=stub.url, scenarios=["demo"], limit=8,
                     output_dir=str(tmp_path), progress=False, concurrency=2)
    table = bench.evaluate()
    assert list(table["scenario"]) == ["demo"] and table["n"][0] == 8 and 0 <= table["gauc"][0] <= 1
    assert bench.runs[0].meta["scorer"]["tier"] == "completions"


def test_make_scorer_from_run(stub):
    run = RunConfig(scheme="discriminative", base_url=stub.url, concurrency=2)
    emb = make_scorer(SPEC, run)
    assert isinstance(emb, OpenAIEmbeddingScorer) and emb.concurrency == 2
    gen = make_scorer(SPEC, RunConfig(scheme="generative", base_url=stub.url, api_tier="chat"))
    assert isinstance(gen, OpenAIGenerativeScorer) and gen.tier == "chat"


# -- bad input ------------------------------------------------------------------------------
def test_no_key_for_openai_is_one_line(tmp_path, capsys):
    with pytest.raises(ConfigError, match="no API key: set the environment variable OPENAI_API_KEY"):
        OpenAIGenerativeScorer(resolve_model("openai:gpt-3.5-turbo"))
    rc = main(["zero-shot", "--model", "gpt-3.5", "--limit", "5", "--output", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "OPENAI_API_KEY" in err[0]


def test_named_key_variable_must_be_set(stub):
    with pytest.raises(ConfigError, match="MY_KEY"):
        scorer(stub, api_key_env="MY_KEY")
    with pytest.raises(ConfigError, match="--api-key-env"):
        scorer(stub, api_key_env="not a name")


def test_local_server_needs_no_key(stub):
    assert scorer(stub).tier == "completions"  # OPENAI_API_KEY is unset in tests


def test_wrong_base_url_is_one_line(stub, capsys, tmp_path):
    from llama_server import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ConfigError, match="cannot reach") as err:
        scorer(stub, base_url=url)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="--base-url"):
        scorer(stub, base_url="localhost:8000")
    # a real server at the wrong path: no /models, no /completions, no /chat
    wrong = stub.url[: -len("/v1")] + "/nothing"
    with pytest.raises(ModelError, match="check --base-url") as err:
        scorer(stub, base_url=wrong)
    assert "\n" not in str(err.value)
    capsys.readouterr()
    rc = main(["zero-shot", "--model", "openai:x", "--base-url", url, "--limit", "5", "--output", str(tmp_path),
               "--quiet", "--max-retries", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "cannot reach" in err[0]


def test_unknown_model_is_one_line(stub):
    spec = ModelSpec("openai:nope", "openai", "nope")
    with pytest.raises(ModelError, match=r"model 'nope' is not served .*it serves: stub-model"):
        OpenAIGenerativeScorer(spec, base_url=stub.url)


def test_unknown_model_on_server_without_model_list(stub_factory):
    stub = stub_factory(list_models=False)
    spec = ModelSpec("openai:nope", "openai", "nope")
    with pytest.raises(ModelError, match="does not serve model 'nope'"):
        OpenAIGenerativeScorer(spec, base_url=stub.url)


# -- secrets --------------------------------------------------------------------------------
def test_key_never_written_anywhere(stub_factory, tmp_path, monkeypatch, caplog, capsys):
    stub = stub_factory(models=("smollm2",), require_key=SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("RECBENCH_CACHE", str(tmp_path / "cache"))
    caplog.set_level(logging.DEBUG)
    stub.faults.extend([("429", 0), "500"])  # retries are logged
    out = tmp_path / "out"
    for scheme in ("generative", "discriminative"):
        rc = main(["zero-shot", "--model", "openai:smollm2", "--base-url", stub.url, "--scheme", scheme,
                   "--limit", "10", "--output", str(out), "--quiet", "--log-samples"])
        assert rc == 0
    assert all(h == f"Bearer {SECRET}" for h in stub.headers_seen)  # the key was used...
    captured = capsys.readouterr()
    blobs = [captured.out, captured.err, caplog.text]
    blobs += [p.read_bytes().decode("utf-8", "replace") for p in out.rglob("*") if p.is_file()]
    blobs += [p.read_bytes().decode("latin-1") for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert "retrying" in caplog.text and "HTTP Request" in caplog.text
    assert blobs and all(SECRET not in b and "secret-test" not in b for b in blobs)  # ...and never written
    # a rejected key: one line without the key, even though the server echoes it masked
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-secret-key-123456")
    with pytest.raises(ConfigError) as err:
        scorer(stub)
    msg = str(err.value)
    assert "rejected the API key" in msg and "wrong-secret" not in msg and "3456" not in msg and "\n" not in msg
    assert err.value.__context__ is None and err.value.__cause__ is None
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ConfigError, match="needs an API key"):
        scorer(stub)


def test_identity_and_diagnostics_hold_no_key(stub, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    sc = scorer(stub)
    sc.score_detailed(REQUESTS[:2])
    text = json.dumps([sc.identity(), sc.diagnostics(), sc.label_info()])
    assert SECRET not in text
    url_with_user = stub.url.replace("http://", "http://user:pw@")
    sc2 = scorer(stub, base_url=url_with_user)
    assert "pw" not in json.dumps(sc2.identity()) and sc2.identity()["endpoint"] == stub.url


# -- dry run and prices ---------------------------------------------------------------------
def test_dry_run_sends_nothing_and_estimates_cost(stub, tmp_path):
    sc = OpenAIGenerativeScorer(resolve_model("gpt-3.5"), dry_run=True)  # no key needed to count
    est = sc.dry_run_estimate(REQUESTS + REQUESTS[:2])
    assert est["requests"] == len(REQUESTS)
    tokens = sum(pricing.estimate_tokens(r.text) for r in REQUESTS)
    assert est["prompt_tokens"] == tokens and est["completion_tokens"] == len(REQUESTS)
    assert est["estimated_cost_usd"] == pytest.approx((tokens * 0.5 + len(REQUESTS) * 1.5) / 1e6, abs=1e-6)
    assert "gpt-3.5-turbo" in est["price_source"]
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"stub-model": {"input": 1000.0, "output": 0}}))
    local = OpenAIGenerativeScorer(SPEC, base_url=stub.url, dry_run=True, prices=str(prices), tier="chat")
    est = local.dry_run_estimate([r.text for r in REQUESTS])
    assert est["estimated_cost_usd"] == pytest.approx(est["prompt_tokens"] * 1000.0 / 1e6, abs=1e-6)
    assert est["prompt_tokens"] == tokens + 8 * len(REQUESTS)  # chat wrapping
    assert stub.posts == []


def test_cli_dry_run(stub_factory, tmp_path, capsys, monkeypatch):
    stub = stub_factory(models=("smollm2",))
    monkeypatch.setenv("RECBENCH_CACHE", str(tmp_path / "cache"))
    rc = main(["zero-shot", "--model", "openai:smollm2", "--base-url", stub.url, "--limit", "10",
               "--output", str(tmp_path / "out"), "--quiet", "--dry-run"])
    assert rc == 0 and stub.posts == []
    err = capsys.readouterr().err
    assert "'requests': 10" in err and "estimated_cost_usd" in err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.json"))


def test_price_table(tmp_path):
    table = pricing.load_prices()
    assert pricing.lookup("gpt-4o-2024-08-06", table)[1] == "gpt-4o"
    assert pricing.lookup("gpt-4o-mini-2024-07-18", table)[1] == "gpt-4o-mini"
    assert pricing.lookup("mystery", table) == (None, None)
    cost, src = pricing.estimate_cost("gpt-3.5-turbo", 1_000_000, 1_000_000)
    assert cost == pytest.approx(2.0) and "built-in" in src
    assert pricing.estimate_cost("llama", 10, base_url="http://127.0.0.1:8000/v1")[0] == 0.0
    cost, src = pricing.estimate_cost("llama", 10, base_url="https://api.example.com/v1")
    assert cost is None and "--prices" in src
    extra = tmp_path / "p.json"
    extra.write_text(json.dumps({"models": {"gpt-3.5-turbo": {"input": 1, "output": 1}, "mine": {"input": 2}}}))
    assert pricing.estimate_cost("gpt-3.5-turbo", 1_000_000, extra=str(extra))[0] == pytest.approx(1.0)
    assert pricing.estimate_cost("mine", 1_000_000, 1_000_000, extra=str(extra))[0] == pytest.approx(4.0)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"m": {"input": "cheap"}}))
    with pytest.raises(ConfigError, match="must be a number"):
        pricing.load_prices(str(bad))
    with pytest.raises(ConfigError, match="not found"):
        pricing.load_prices(str(tmp_path / "missing.json"))
    assert pricing.estimate_tokens("abcd" * 10) == 10 and pricing.estimate_tokens("日本語") == 3


# -- one-off glitches and degradations ------------------------------------------------------
def test_one_answer_without_logprobs_on_the_probe_keeps_the_tier(stub, capsys):
    stub.faults.append("nologprobs")
    sc = scorer(stub)
    assert sc.tier == "completions"
    d = sc.diagnostics()
    assert d["api"]["usage"]["retries_by_reason"] == {NO_LOGPROBS: 1} and d["api"]["degradations"] == []
    err = capsys.readouterr().err
    assert "scoring model 'stub-model' through the completions tier" in err and "warning" not in err


def test_tier_changes_only_on_repeated_evidence_and_says_so(stub, capsys):
    stub.faults.extend(["nologprobs"] * 3)  # three probes agree: no logprobs on /completions
    sc = scorer(stub, max_retries=0)  # the probes' evidence does not depend on --max-retries
    assert sc.tier == "chat"
    scores, _ = sc.score_detailed(REQUESTS[:3])
    assert scores == pytest.approx(expected(REQUESTS[:3]), abs=1e-9)
    (line,) = sc.diagnostics()["api"]["degradations"]
    assert "chat tier, not completions" in line and "without logprobs (3 attempts)" in line
    err = [x for x in capsys.readouterr().err.splitlines() if "warning" in x]
    assert err == [f"recbench: warning: {line}"]


def test_missing_logprobs_mid_run_is_retried_not_fatal(stub):
    sc = scorer(stub, concurrency=2)
    stub.faults.extend(["ok", "nologprobs", "ok", "nologprobs"])
    scores, _ = sc.score_detailed(REQUESTS)
    assert scores == pytest.approx(expected(), abs=1e-9)
    d = sc.diagnostics()
    assert d["api"]["usage"]["retries_by_reason"] == {NO_LOGPROBS: 2} and d["tier"] == "completions"


def test_logprobs_vanishing_mid_run_is_one_honest_line(stub_factory):
    stub = stub_factory()
    sc = scorer(stub, concurrency=1, max_retries=2)
    stub.completion_logprobs = False  # the server stops giving logprobs after the probe
    with pytest.raises(ModelError) as err:
        sc.score_detailed(REQUESTS[:2])
    msg = str(err.value)
    assert "\n" not in msg and "without logprobs" in msg and "gave them before" in msg and "rerun" in msg
    assert "does not support" not in msg


def test_lowered_logprobs_are_announced_and_recorded(stub, capsys):
    sc = scorer(stub, concurrency=1)
    stub.faults.append("400")  # one refusal at logprobs=20
    scores, _ = sc.score_detailed(REQUESTS)
    assert scores == pytest.approx(expected(), abs=1e-9)
    d = sc.diagnostics()
    assert d["top_logprobs"] == 5 and stub.posts[-1]["body"]["logprobs"] == 5
    (line,) = d["api"]["degradations"]
    assert "refused logprobs=20" in line and "top 5" in line
    warnings = [x for x in capsys.readouterr().err.splitlines() if "warning" in x]
    assert warnings == [f"recbench: warning: {line}"]


# -- Ctrl-C ---------------------------------------------------------------------------------
class _CtrlC:
    """Sends SIGINT to the main thread once the stub holds a hung request (as a user would)."""

    def __init__(self, stub: StubOpenAI):
        self.sent_at = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(stub, threading.main_thread().ident), daemon=True)

    def _run(self, stub, main_thread):
        while not self._done.wait(0.02):
            if any(p["outcome"] == "hang" for p in list(stub.posts)):
                time.sleep(0.2)  # let the other workers send theirs too
                self.sent_at = time.monotonic()
                signal.pthread_kill(main_thread, signal.SIGINT)
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()


@pytest.mark.parametrize("concurrency", [1, 4])
def test_ctrl_c_with_requests_in_flight_returns_at_once(stub, concurrency):
    sc = scorer(stub, concurrency=concurrency, timeout=30.0)
    stub.faults.extend(["ok", "ok"] + ["hang"] * 8)  # two answers, then the server hangs
    delivered = []
    with _CtrlC(stub) as ctrl_c:
        with pytest.raises(KeyboardInterrupt):
            sc.score_detailed(REQUESTS, on_result=lambda i, p, e: delivered.append(i))
        elapsed = time.monotonic() - ctrl_c.sent_at
    assert elapsed < 1.5, f"took {elapsed:.1f}s to stop"
    assert len(delivered) == 2  # what arrived was handed on; nothing after the interrupt
    time.sleep(0.3)
    assert len(delivered) == 2
    stub.faults.clear()
    scores, _ = sc.score_detailed(REQUESTS[:3])  # the scorer still works afterwards
    assert scores == pytest.approx(expected(REQUESTS[:3]), abs=1e-9)


def test_cli_ctrl_c_prints_the_cached_line_promptly(stub_factory, tmp_path, monkeypatch, capsys):
    stub = stub_factory(models=("smollm2",))
    monkeypatch.setenv("RECBENCH_CACHE", str(tmp_path / "cache"))
    stub.faults.extend(["ok"] * 3 + ["hang"] * 30)  # the probe and two answers, then it hangs
    with _CtrlC(stub) as ctrl_c:
        rc = main(["zero-shot", "--model", "openai:smollm2", "--base-url", stub.url, "--limit", "20", "--quiet",
                   "--output", str(tmp_path / "out"), "--concurrency", "4", "--timeout", "30"])
        elapsed = time.monotonic() - ctrl_c.sent_at
    assert rc == 130 and elapsed < 1.5, f"rc {rc} {elapsed:.1f}s after Ctrl-C"
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("recbench: interrupted; finished work is cached")


# -- base URLs and secrets ------------------------------------------------------------------
@pytest.mark.parametrize("port", ["abc", "99999", "0", "-1"])
def test_bad_port_is_one_clear_line(port, capsys, tmp_path):
    url = f"http://localhost:{port}/v1"
    with pytest.raises(ConfigError, match="bad port after http://localhost: it must be a number from 1 to 65535"):
        check_base_url(url)
    rc = main(["zero-shot", "--model", "openai:x", "--base-url", url, "--limit", "5", "--output", str(tmp_path),
               "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("recbench: error: --base-url has a bad port")


@pytest.mark.parametrize("value", [
    "user:sk-proj-abcdef123456@api.example.com/v1",  # scheme-less, with userinfo
    "sk-proj-abcdef123456",  # the key pasted as the URL
    "9f86d081884c7d659a2feaa0c55ad015",  # a key without the sk- prefix (e.g. Azure)
    "ftp://admin:9f86d081884c7d659a2feaa0c55ad015@host/v1",
])
def test_base_url_holding_a_key_is_never_echoed(value, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", "9f86d081884c7d659a2feaa0c55ad015")
    with pytest.raises(ConfigError) as err:
        OpenAIGenerativeScorer(SPEC, base_url=value)
    rc = main(["zero-shot", "--model", "openai:x", "--base-url", value, "--limit", "5", "--output", str(tmp_path),
               "--quiet"])
    shown = [str(err.value), capsys.readouterr().err]
    assert rc == 2 and "--base-url must be a URL like http://localhost:8000/v1" in shown[0]
    for text in shown:
        assert "abcdef123456" not in text and "9f86d081" not in text and "user" not in text and "admin" not in text


def test_scheme_less_host_port_gets_a_hint():
    with pytest.raises(ConfigError, match=r"did you mean http://localhost:8000/v1\?"):
        check_base_url("localhost:8000")
    with pytest.raises(ConfigError) as err:
        check_base_url("sk-live:1234")
    assert "sk-live" not in str(err.value)


def test_scrubber():
    scrub = Scrubber(["s3cretKEY99"])
    text = scrub("bad key S3CRETkey99 at http://bob:pw@host/v1 with Bearer abc.def and sk-abcdef")
    assert "s3cret" not in text.lower() and "bob" not in text and "pw@" not in text and "abc.def" not in text
    assert "abcdef" not in text and "http://***@host/v1" in text


def test_two_way_softmax():
    p, mass = two_way_softmax(math.log(0.3), math.log(0.1))
    assert p == pytest.approx(0.75) and mass == pytest.approx(0.4)
    assert two_way_softmax(0.0, -1000.0) == (1.0, 1.0) and two_way_softmax(-1000.0, 0.0)[0] == 0.0
    assert two_way_softmax(-800.0, -801.0)[0] == pytest.approx(1 / (1 + math.exp(-1)))  # no underflow
