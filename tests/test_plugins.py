"""The plug-in shape: settings declared once, schemes and tasks from registries, one typed
results record, and the torch-free `dummy` backend driving the runner and CLI in seconds."""

from __future__ import annotations

import ast
import json
import os
import stat
from dataclasses import fields, make_dataclass
from pathlib import Path

import pytest

import recbench
from recbench.cli import build_parser, main
from recbench.config import RunConfig
from recbench.errors import ConfigError
from recbench.evaluate import RecBench
from recbench.models import ModelSpec
from recbench.results import RESULTS_SCHEMA_VERSION, RunResult
from recbench.schemes import SCHEMES, get_scheme, resolve_scheme, scheme_names
from recbench.settings import DEFAULT_SEED, cli_fields, flag_name, setting, validate
from recbench.tasks import get_task, task_names

PACKAGE = Path(recbench.__file__).resolve().parent


def _zero_shot_parser():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices["zero-shot"]


def test_every_setting_is_a_flag_with_help_and_a_keyword():
    zs = _zero_shot_parser()
    flags = {opt for a in zs._actions for opt in a.option_strings}
    for f in cli_fields(RunConfig):
        assert f.metadata["help"], f.name
        negate = f.metadata.get("negate")
        assert (negate or flag_name(f)) in flags, f.name
    # every field is a keyword of RecBench and lands in the results' settings block
    cfg = RecBench(model="dummy", scenarios="demo", progress=False).config
    public = cfg.public()
    for f in fields(RunConfig):
        if f.name != "scenario_options":
            assert f.name in public, f.name


def test_a_new_setting_needs_no_further_code(tmp_path, monkeypatch):
    """A throw-away field added to RunConfig is a CLI flag, a keyword and a results entry."""
    extended = make_dataclass("RunConfig", [("zz_probe", int, setting(7, "a throw-away setting", minimum=1))],
                              bases=(RunConfig,))
    extended.public = RunConfig.public
    for module in ("recbench.config", "recbench.evaluate", "recbench.cli.zero_shot"):
        monkeypatch.setattr(f"{module}.RunConfig", extended)
    out = tmp_path / "res"
    assert main(["zero-shot", "--model", "dummy", "--limit", "12", "--zz-probe", "9", "--output", str(out),
                 "--quiet"]) == 0
    [path] = list(out.glob("dummy/generative/demo.json"))
    assert json.loads(path.read_text())["meta"]["settings"]["zz_probe"] == 9
    bench = RecBench(model="dummy", scenarios="demo", zz_probe=3, progress=False)
    assert bench.config.zz_probe == 3
    with pytest.raises(ConfigError, match="zz-probe"):
        RecBench(model="dummy", scenarios="demo", zz_probe=0)


def test_one_seed_default():
    assert RunConfig().seed == DEFAULT_SEED
    from recbench.sft.config import SFTConfig

    assert SFTConfig(model="x", train="demo").seed == DEFAULT_SEED
    assert SFTConfig(model="x", train="demo").data_seed == DEFAULT_SEED
    hits = [p for p in PACKAGE.rglob("*.py") if "2024" in p.read_text(encoding="utf-8")
            and p.name not in ("settings.py",)]
    offenders = []
    for p in hits:
        tree = ast.parse(p.read_text(encoding="utf-8"))
        offenders += [f"{p.name}:{n.lineno}" for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value == 2024]
    assert offenders == []


@pytest.mark.parametrize("argv, fragment", [
    (["--batch-size", "0"], "batch-size"),
    (["--limit", "0"], "limit"),
    (["--concurrency", "0"], "concurrency"),
    (["--timeout", "0"], "timeout"),
    (["--bootstrap", "-1"], "bootstrap"),
])
def test_bad_settings_fail_before_any_data_or_model_work(argv, fragment, monkeypatch, capsys):
    def boom(*a, **k):
        raise AssertionError("data or model work started before validation")

    monkeypatch.setattr("recbench.tasks.ctr.CTRTask.load", boom)
    monkeypatch.setattr("recbench.scorers.dummy.DummyGenerativeScorer.from_run", boom)
    assert main(["zero-shot", "--model", "dummy", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("recbench: error:") and fragment in err and "Traceback" not in err


def test_bad_similarity_is_refused_by_the_parser_and_the_api():
    with pytest.raises(SystemExit):
        main(["zero-shot", "--model", "dummy", "--scheme", "discriminative", "--similarity", "l2"])
    with pytest.raises(ConfigError, match="similarity"):
        RecBench(model="dummy", scheme="discriminative", similarity="l2")


def test_scheme_and_task_choices_come_from_the_registries():
    zs = _zero_shot_parser()
    by_dest = {a.dest: a for a in zs._actions}
    assert list(by_dest["scheme"].choices) == scheme_names() == list(SCHEMES)
    assert list(by_dest["task"].choices) == task_names()
    assert "default" in by_dest["scheme"].help


def test_default_scheme_is_the_models_only_one():
    embedding_only = ModelSpec("e", "hf", "x", abilities=("embedding",))
    assert resolve_scheme(None, embedding_only).name == "discriminative"
    both = ModelSpec("b", "hf", "x")
    assert resolve_scheme(None, both).name == scheme_names()[0]
    with pytest.raises(ConfigError, match="cannot serve the generative scheme"):
        resolve_scheme("generative", embedding_only)


def test_no_scheme_names_outside_the_scheme_package():
    """Outside recbench/schemes/, no code compares a scheme name or lists scheme names."""
    names = set(scheme_names())
    offenders = []
    for p in PACKAGE.rglob("*.py"):
        if "schemes" in p.relative_to(PACKAGE).parts:
            continue
        tree = ast.parse(p.read_text(encoding="utf-8"))
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                      and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for n in ast.walk(tree):
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in names and id(n) not in docstrings:
                offenders.append(f"{p.relative_to(PACKAGE)}:{n.lineno} {n.value!r}")
    assert offenders == []


def test_dummy_runs_both_schemes_end_to_end_and_reruns_from_the_cache(tmp_path, capsys):
    out = tmp_path / "res"
    for scheme in ("generative", "discriminative"):
        assert main(["zero-shot", "--model", "dummy", "--scheme", scheme, "--output", str(out), "--quiet",
                     "--log-samples"]) == 0
        first = capsys.readouterr().out
        assert "0 from the cache" in first
        path = out / "dummy" / scheme / "demo.json"
        doc = json.loads(path.read_text())
        assert doc["task"] == "ctr" and doc["schema_version"] == RESULTS_SCHEMA_VERSION
        assert doc["metrics"]["n"] == 500 and doc["metrics"]["gauc"] > 0.55  # word overlap beats random
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~_umask()
        scores = [json.loads(x)["score"] for x in path.with_name("demo.samples.jsonl").read_text().splitlines()]
        assert main(["zero-shot", "--model", "dummy", "--scheme", scheme, "--output", str(out), "--quiet",
                     "--log-samples"]) == 0
        again = json.loads(path.read_text())
        assert again["meta"]["timings"]["computed"] == 0
        assert "0 computed" in capsys.readouterr().out
        rescored = [json.loads(x)["score"] for x in path.with_name("demo.samples.jsonl").read_text().splitlines()]
        assert max(abs(a - b) for a, b in zip(scores, rescored)) <= 1e-9
        assert again["metrics"]["gauc"] == doc["metrics"]["gauc"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_results_record_round_trips_and_reads_old_files(tmp_path):
    rec = RunResult(scenario="demo", model="m", scheme="generative", metrics={"gauc": 0.6, "n": 3},
                    meta={"seed": 1}, task="ctr")
    path = tmp_path / "m" / "generative" / "demo.json"
    rec.write(path)
    assert RunResult.read(path) == rec
    old = {"recbench_version": "0.1.0", "protocol_version": "1", "scenario": "demo", "model": "m",
           "scheme": "generative", "pipeline": "zero-shot", "metrics": {"gauc": 0.6, "n": 3}, "meta": {}}
    loaded = RunResult.from_dict(old)
    assert loaded.task == "ctr" and loaded.schema_version == 1 and loaded.protocol_version == "1"
    from recbench.report import collect_results

    path.write_text(json.dumps(old))
    df = collect_results(tmp_path)
    assert df.loc[0, "task"] == "ctr" and df.loc[0, "gauc"] == pytest.approx(0.6)


def test_label_tokens_follow_the_template_in_use(tiny_models, tmp_path):
    """A template whose answer cue ends in a space gets labels without a leading space."""
    from recbench.prompts import PromptBuilder
    from recbench.scorers.hf_generative import HFGenerativeScorer
    from recbench.models import resolve_model

    tpl_path = tmp_path / "nl.txt"
    tpl_path.write_text("User behavior sequence:\n{history}\nCandidate item: {candidate}\nAnswer (Yes/No): ")
    scheme = get_scheme("generative")
    tpl = scheme.template(str(tpl_path))
    scorer = HFGenerativeScorer(resolve_model(str(tiny_models["llama"])))
    default_labels = scorer.label_info()
    builder = PromptBuilder(tpl, "item", scorer.count_tokens, scorer.context_budget)
    scheme.prepare(scorer, builder)
    assert not scorer.label_info()["yes_text"].startswith(" ")
    assert default_labels["yes_text"].startswith(" ")


def test_task_registry_and_ctr_groups():
    task = get_task("ctr")
    import pandas as pd

    df = pd.DataFrame({"user_id": ["a", "a", "b"], "item_id": ["1", "2", "3"], "label": [1, 0, 1],
                       "history": [["9"], ["9"], ["8"]]})
    groups = task.groups(df)
    assert [(g.user_id, g.candidates, g.slots) for g in groups] == [("a", ("1", "2"), (0, 1)), ("b", ("3",), (2,))]
    with pytest.raises(ConfigError, match="unknown task"):
        get_task("ctrr")


def test_validate_coerces_like_the_cli():
    cfg = RunConfig(batch_size="8", limit=3.0)
    validate(cfg)
    assert cfg.batch_size == 8 and cfg.limit == 3
    with pytest.raises(ConfigError, match="batch-size"):
        validate(RunConfig(batch_size="many"))


def _custom_tables(tmp_path):
    rows = ["uid,iid,stars,ts"]
    for u in range(8):
        for k in range(9):
            rows.append(f"u{u},i{(u * 5 + k) % 40},{[5, 4, 1, 5, 2, 4, 5, 3, 1][k]},{1000 + k}")
    (tmp_path / "inter.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "items.csv").write_text("iid,name\n" + "".join(f"i{k},Item {k}\n" for k in range(40)))
    return ["--interactions", str(tmp_path / "inter.csv"), "--items", str(tmp_path / "items.csv"),
            "--user-col", "uid", "--item-col", "iid", "--time-col", "ts", "--rating-col", "stars",
            "--text-col", "name", "--threshold", "4"]


def test_zero_shot_and_sft_take_the_custom_scenarios_options(tmp_path, capsys):
    opts = _custom_tables(tmp_path)
    out = tmp_path / "res"
    assert main(["zero-shot", "--model", "dummy", "--scenario", "custom", *opts, "--output", str(out),
                 "--quiet"]) == 0
    doc = json.loads((out / "dummy" / "generative" / "custom.json").read_text())
    assert doc["scenario"] == "custom" and doc["metrics"]["n"] > 0
    from recbench.cli.sft import config_from_args

    parser = build_parser()
    args = parser.parse_args(["sft", "--model", "dummy", "--train", "custom", *opts])
    cfg = config_from_args(args)
    assert cfg.scenario_options["custom"]["user_col"] == "uid"
    assert cfg.raw_dir == str(tmp_path)
