"""Progress bars on stderr (tqdm), off with --quiet or when there is nothing to do."""

from __future__ import annotations

import sys


def progress_bar(total: int, desc: str, enabled: bool = True, unit: str = "sample"):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled or total == 0, file=sys.stderr,
                dynamic_ncols=True, smoothing=0.1)
