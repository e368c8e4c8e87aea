"""Errors meant for people.

Everything the user can fix (a missing file, a bad column, an unknown model, a bad flag)
raises a :class:`RecBenchError` subclass whose message is one line saying what went wrong,
where, and how to fix it. The CLI prints that line and exits non-zero without a traceback;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class RecBenchError(Exception):
    """A problem the user can fix; the message is shown as-is."""

    exit_code = 2


class DataError(RecBenchError):
    """Raw data missing, unreadable or in the wrong format."""


class ConfigError(RecBenchError):
    """A bad option, name or combination of settings."""


class ModelError(RecBenchError):
    """A model that cannot be loaded or cannot serve the requested scheme."""


class MissingDependencyError(RecBenchError):
    """An optional dependency is not installed; the message names the extra."""

    def __init__(self, package: str, extra: str, what: str = "", command: str = ""):
        purpose = f" for {what}" if what else ""
        command = command or f"pip install 'recbench[{extra}]'"
        super().__init__(f"the optional package '{package}' is needed{purpose}; install it with: {command}")
        self.package = package
        self.extra = extra


def require(module: str, extra: str, what: str = ""):
    """Import an optional module or raise a MissingDependencyError naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(module.split(".")[0], extra, what) from exc


def suggest(name: str, choices) -> str:
    """' (did you mean X?)' for a close match, else a list of valid names."""
    import difflib

    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    if close:
        return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
    shown = ", ".join(choices[:20]) + (", ..." if len(choices) > 20 else "")
    return f" (known: {shown})"
