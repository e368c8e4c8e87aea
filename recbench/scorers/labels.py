"""The Yes/No label arithmetic every generative backend shares.

One place for the two-way softmax, so local, vLLM and API scores are computed the same way
(PROTOCOL §5): P(Yes) over the two label log-probabilities, plus their joint probability
mass over the whole vocabulary (a diagnostic: low mass means the model wanted to say
something else).
"""

from __future__ import annotations

import math
from typing import Tuple


def two_way_softmax(lp_yes: float, lp_no: float) -> Tuple[float, float]:
    """(P(Yes | Yes or No), P(Yes) + P(No)) from the labels' log-probabilities.

    Stable for any inputs: large gaps give 0.0 or 1.0, never an overflow."""
    top = max(lp_yes, lp_no)
    e_yes, e_no = math.exp(lp_yes - top), math.exp(lp_no - top)
    mass = math.exp(min(top, 0.0)) * (e_yes + e_no)  # log-probs are <= 0; capped at 1 below
    return e_yes / (e_yes + e_no), min(1.0, mass)
