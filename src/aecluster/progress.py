"""Progress bars: tqdm on a terminal, nothing in a log file or with --quiet."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tqdm import tqdm


def progress_bar(iterable: Iterable | None = None, *, enabled: bool = True, **kw: Any) -> tqdm:
    """A tqdm bar when `enabled` and stderr is a terminal (tqdm's `disable=None`)."""
    return tqdm(iterable, disable=None if enabled else True, **kw)
