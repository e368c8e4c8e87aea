"""The wheel carries the package, the prompt templates and the data files, and the command."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    pytest.importorskip("hatchling")
    out = tmp_path_factory.mktemp("wheel")
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(ROOT)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    [whl] = list(out.glob("recbench-*.whl"))
    return whl


def test_wheel_contents(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for prompt in (ROOT / "prompts").rglob("*.txt"):
        assert f"recbench/prompts/{prompt.relative_to(ROOT / 'prompts').as_posix()}" in names
    for required in ("recbench/__init__.py", "recbench/scenarios/base.py", "recbench/data/demo_catalog.csv",
                     "recbench/data/reference/zero_shot_generative.csv", "recbench/cli/__init__.py"):
        assert required in names, required
    assert not any(n.startswith("tests/") for n in names)
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "recbench = recbench.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_installed_wheel_finds_its_templates(wheel, tmp_path):
    """Unpacked outside the source tree, the package must use its own copy of prompts/."""
    zipfile.ZipFile(wheel).extractall(tmp_path)
    code = ("import recbench.prompts as p, recbench; "
            "print(p.templates_root()); print(p.Template.load('generative').sha256); "
            "print(len(recbench.load_scenario('demo').test))")
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(tmp_path), "RECBENCH_CACHE": str(tmp_path / "cache"), "PATH": ""})
    assert res.returncode == 0, res.stderr[-2000:]
    root, sha, n = res.stdout.split()
    assert Path(root) == tmp_path / "recbench" / "prompts"
    import hashlib

    assert sha == hashlib.sha256((ROOT / "prompts" / "generative" / "default.txt").read_bytes()).hexdigest()
    assert int(n) == 500


def test_help_shows_the_three_entry_points():
    """help(recbench) names load_scenario, RecBench (imported lazily) and the command."""
    code = ("import pydoc, sys, recbench; assert 'RecBench' in dir(recbench); "
            "assert 'recbench.evaluate' not in sys.modules, 'dir() must not import the evaluation code'; "
            "print(pydoc.render_doc(recbench, renderer=pydoc.plaintext))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert res.returncode == 0, res.stderr[-2000:]
    doc = res.stdout
    assert "class RecBench" in doc  # listed under CLASSES, with its own docstring
    for entry in ("load_scenario(", "RecBench(", "recbench zero-shot"):
        assert entry in doc.split("CLASSES")[0], entry  # in the package docstring
