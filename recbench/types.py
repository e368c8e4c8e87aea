"""Small typed records passed between a task, a scheme and a scorer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple


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
