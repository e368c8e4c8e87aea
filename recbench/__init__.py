"""recbench: how good is this LLM as a recommender?

Three entry points:

- ``recbench.load_scenario(name, raw_dir=..., seed=2024)``: one scenario's items, test and
  fine-tuning samples (``recbench.list_scenarios()`` names them);
- ``recbench.RecBench(model=..., scheme=..., scenarios=[...])``: evaluate a model;
  ``.evaluate()`` returns one row per scenario and writes the results files;
- the ``recbench`` command (also ``python -m recbench``): ``zero-shot``, ``sft``, ``report``,
  ``data``, ``models``; each has ``--help``.

Example::

    import recbench
    recbench.list_scenarios()
    sc = recbench.load_scenario("movielens", raw_dir="data/ml-25m")
    table = recbench.RecBench(model="smollm2-135m", scheme="generative").evaluate()

    $ recbench zero-shot --model smollm2-135m --scheme generative    # the bundled demo, offline
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import RecBenchError  # noqa: E402
from .scenarios import PROTOCOL_VERSION, Scenario, list_scenarios, load_scenario  # noqa: E402

_LAZY = ("RecBench",)


def __getattr__(name):
    # Heavy parts (torch, transformers) load only when used.
    if name == "RecBench":
        from .evaluate import RecBench

        globals()["RecBench"] = RecBench
        return RecBench
    raise AttributeError(f"module 'recbench' has no attribute {name!r}")


def __dir__():
    # dir() and help() list the lazily imported names too (PEP 562)
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["PROTOCOL_VERSION", "RecBench", "RecBenchError", "Scenario", "__version__", "list_scenarios", "load_scenario"]
