"""recbench: how good is this LLM as a recommender?

    import recbench
    recbench.list_scenarios()
    sc = recbench.load_scenario("movielens", raw_dir="data/ml-25m")
    table = recbench.RecBench(model="smollm2-135m", scheme="generative").evaluate()
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import RecBenchError  # noqa: E402
from .scenarios import PROTOCOL_VERSION, Scenario, list_scenarios, load_scenario  # noqa: E402


def __getattr__(name):
    # Heavy parts (torch, transformers) load only when used.
    if name == "RecBench":
        from .evaluate import RecBench

        return RecBench
    raise AttributeError(f"module 'recbench' has no attribute {name!r}")


__all__ = ["PROTOCOL_VERSION", "RecBench", "RecBenchError", "Scenario", "__version__", "list_scenarios", "load_scenario"]
