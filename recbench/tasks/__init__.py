"""Task registry: what is measured. Adding a task = one module + one line in TASKS."""

from __future__ import annotations

import importlib
from typing import Dict, List

from ..errors import ConfigError, suggest
from .base import Task

# name -> "module:Class" (imported when used)
TASKS: Dict[str, str] = {
    "ctr": "recbench.tasks.ctr:CTRTask",
    "seqrec": "recbench.tasks.seqrec:SeqRecTask",
}
DEFAULT_TASK = "ctr"


def task_names() -> List[str]:
    return list(TASKS)


def get_task(name: str) -> Task:
    target = TASKS.get(name)
    if target is None:
        raise ConfigError(f"unknown task '{name}'" + suggest(str(name), TASKS))
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)()


__all__ = ["DEFAULT_TASK", "TASKS", "Task", "get_task", "task_names"]
