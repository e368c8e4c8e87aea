"""Scheme registry: how a model scores. Adding a scheme = one module + one line in SCHEMES
(+ its templates under prompts/<name>/). Nothing outside this package lists scheme names."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Dict, List

from ..errors import ConfigError, suggest
from .base import Scheme, SchemeContext, SchemeOutput

if TYPE_CHECKING:  # pragma: no cover
    from ..models import ModelSpec

# name -> "module:Class"; the first scheme a model supports is its default
SCHEMES: Dict[str, str] = {
    "generative": "recbench.schemes.generative:GenerativeScheme",
    "discriminative": "recbench.schemes.discriminative:DiscriminativeScheme",
    "listwise": "recbench.schemes.listwise:ListwiseScheme",
    "conventional": "recbench.schemes.conventional:ConventionalScheme",
}


def scheme_names() -> List[str]:
    return list(SCHEMES)


def get_scheme(name: str) -> Scheme:
    target = SCHEMES.get(name)
    if target is None:
        raise ConfigError(f"unknown scheme '{name}'" + suggest(str(name), SCHEMES))
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)()


def schemes_for(spec: "ModelSpec") -> List[str]:
    """The schemes a model can serve, default first."""
    return [n for n in SCHEMES if get_scheme(n).supports(spec)]


def resolve_scheme(name, spec: "ModelSpec") -> Scheme:
    """The named scheme, checked against the model; None: the model's default scheme."""
    supported = schemes_for(spec)
    if name is None:
        if not supported:
            raise ConfigError(f"model '{spec.name}' supports no scoring scheme")
        return get_scheme(supported[0])
    scheme = get_scheme(name)
    if name not in supported:
        raise ConfigError(f"model '{spec.name}' cannot serve the {name} scheme "
                          f"(it supports: {', '.join(supported) or 'none'})")
    return scheme


__all__ = ["SCHEMES", "Scheme", "SchemeContext", "SchemeOutput", "get_scheme", "resolve_scheme", "scheme_names",
           "schemes_for"]
