"""`recbench models`: the model aliases and what they resolve to."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("models", help="list model aliases", description="List the model aliases recbench knows "
                       "(PROTOCOL §8 plus the two offline packaged models). Any HF id, local folder, .gguf file or "
                       "openai:<model> works too.")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..models import ALIASES
    from ..schemes import schemes_for

    width = max(len(n) for n in ALIASES)
    print(f"{'alias':<{width}}  {'backend':<7}  {'schemes':<34}  model")
    for name, spec in sorted(ALIASES.items()):
        target = spec.model_id + (f" ({spec.gguf_file})" if spec.gguf_file else "")
        note = f"  [{spec.note}]" if spec.note else ""
        print(f"{name:<{width}}  {spec.backend:<7}  {','.join(schemes_for(spec)):<34}  {target}{note}")
    return 0
