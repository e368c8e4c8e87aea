"""Scenarios: official raw files -> items + test/fine-tuning samples (PROTOCOL §2-§3)."""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Callable, Optional, Union

from ..errors import DataError
from ..settings import DEFAULT_SEED
from . import cache as _cache
from .base import PROTOCOL_VERSION, Event, RawSource, RemoteFile, SamplingPolicy, Scenario, build_scenario
from .io import BuildReport
from .registry import BENCHMARK_SCENARIOS, SCENARIOS, get_source, list_scenarios

PathLike = Union[str, os.PathLike]


def resolve_raw_dir(name: str, raw_dir: Optional[PathLike]) -> Optional[Path]:
    """The folder holding a scenario's files.

    raw_dir may be the scenario folder itself or a root holding one folder per scenario
    (ROOT/mind, ROOT/movielens, ...); without it, $RECBENCH_DATA is used as that root.
    """
    if raw_dir is None:
        env = os.environ.get("RECBENCH_DATA")
        if not env:
            return None
        raw_dir = env
    root = Path(raw_dir).expanduser()
    if (root / name).is_dir():
        return root / name
    return root


def split_cache_key(source_cls, files, seed: int, num_test: int, num_finetune: int, options: dict) -> str:
    """The cache key of a build: settings plus the fingerprint of the raw files and of the
    loader's own source (a changed loader never reuses old splits)."""
    fingerprint = _cache.raw_fingerprint(list(files) + [Path(inspect.getfile(source_cls))])
    return _cache.cache_key(source_cls.name, source_cls.loader_version, seed, num_test, num_finetune, options,
                            fingerprint)


def load_scenario(
    name: str,
    raw_dir: Optional[PathLike] = None,
    *,
    seed: int = DEFAULT_SEED,
    num_test: Optional[int] = None,
    num_finetune: Optional[int] = None,
    strict: bool = False,
    cache_dir: Optional[PathLike] = None,
    use_cache: bool = True,
    progress: Optional[Callable[[str], None]] = None,
    task: Optional[str] = None,
    engine: Optional[str] = None,
    **options,
) -> Scenario:
    """Build (or load from cache) a scenario's items, test and fine-tuning samples.

    options are loader-specific (custom scenario: file names and column names).
    task: the task whose split to build (default ctr: the samples above); another task builds
    its own split (seqrec: test frame user_id, history, target, candidates; options may add
    history_len and candidates), see recbench/tasks/.
    engine: "duckdb" (the default, or $RECBENCH_ENGINE) reads the large raw files with the
    columnar engine; "python" streams them in Python (slower, same samples).
    """
    from ..tasks import DEFAULT_TASK, get_task
    from .engine import resolve_engine

    engine = resolve_engine(engine)
    if task is not None and task != DEFAULT_TASK:  # (seqrec reads the events with the Python reader)
        return get_task(task).load_scenario(name, raw_dir, seed=seed, num_test=num_test, num_finetune=num_finetune,
                                            strict=strict, cache_dir=cache_dir, use_cache=use_cache,
                                            progress=progress, **options)
    source_cls = get_source(name)
    num_test = source_cls.default_num_test if num_test is None else int(num_test)
    num_finetune = source_cls.default_num_finetune if num_finetune is None else int(num_finetune)
    if num_test < 0 or num_finetune < 0:
        raise DataError("num_test and num_finetune must be >= 0")
    # Sources that need no folder (custom, demo) still get an explicit raw_dir: custom
    # resolves relative file paths against it.
    folder = resolve_raw_dir(source_cls.name, raw_dir) if (source_cls.needs_raw_dir or raw_dir is not None) else None
    if source_cls.needs_raw_dir:
        if folder is None:
            raise DataError(
                f"{source_cls.name}: no raw data folder given; pass --raw-dir DIR (or raw_dir=...) "
                f"or set RECBENCH_DATA to a folder holding {source_cls.name}/ with {source_cls.expected_files}"
            )
        if not folder.is_dir():
            raise DataError(f"{source_cls.name}: raw data folder {folder} does not exist")
    report = BuildReport(strict=strict)
    source = source_cls(folder, report, **options)
    files = source.raw_files()
    key = split_cache_key(source_cls, files, seed, num_test, num_finetune, options)
    entry = Path(cache_dir or _cache.default_cache_dir()) / "scenarios" / source_cls.name / key
    if use_cache:
        cached = _cache.load(entry, progress=progress)
        if cached is not None:
            return cached
    scenario = build_scenario(source, seed=seed, num_test=num_test, num_finetune=num_finetune, progress=progress,
                              engine=engine)
    scenario.info["cache_key"] = key
    scenario.info["raw_files"] = [str(p) for p in files]
    if use_cache:
        _cache.save(scenario, entry)
    return scenario


__all__ = [
    "BENCHMARK_SCENARIOS",
    "BuildReport",
    "Event",
    "PROTOCOL_VERSION",
    "RawSource",
    "RemoteFile",
    "SCENARIOS",
    "SamplingPolicy",
    "Scenario",
    "build_scenario",
    "get_source",
    "list_scenarios",
    "load_scenario",
    "resolve_raw_dir",
]
