"""Small typed records passed between a task, a scheme and a scorer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence, Tuple

import numpy as np


@dataclass(frozen=True)
class UserGroup:
    """One user's candidates to score: the unit of work of every scheme.

    A task turns its samples into groups; a scheme scores each group's candidates (sharing
    the history's prompt prefix or embedding) and writes score j of the group to position
    `slots[j]` of the flat score vector the task then measures."""

    user_id: str
    history: Tuple[str, ...]  # item ids, oldest first
    candidates: Tuple[str, ...]  # item ids
    slots: Tuple[int, ...]  # positions of the candidates' scores in the task's score vector


@dataclass(frozen=True)
class Catalogue:
    """A whole catalogue to rank per user (seqrec --candidates all), for schemes that score
    users x items with one matrix product per batch of users (`Scheme.ranks_catalogue`).

    Such a scheme scores the user of each of its groups (all of the task's, or a shard's share)
    against every item of `items`, passes each block of scores to `reduce` with the users'
    indices (`user_of(group)`; the reduction is the task's code: it knows the targets and what
    to mask, the scheme never does) and returns the reduced values as its scores: a vector of
    `num_users` values, NaN for users it did not score, instead of one score per slot. The
    (users x items) matrix never exists whole."""

    items: Tuple[str, ...]
    num_users: int
    user_of: Callable[["UserGroup"], int]  # a group's user index in 0..num_users-1
    reduce: Callable[[Sequence[int], np.ndarray], np.ndarray]  # (user indices, (n, len(items)) scores) -> (n,)
