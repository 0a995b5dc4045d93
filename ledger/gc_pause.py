"""Pausing Python's cyclic garbage collector while building large states.

Folding a million events or loading a checkpoint allocates millions of container objects
that all stay alive; every automatic collection re-traverses the growing state for nothing
(measured: a 1M-event replay 27 s -> 16 s, a checkpoint load 2.9 s -> 1.7 s). None of these
objects form garbage cycles, so nothing is lost by collecting later.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def paused_gc() -> Iterator[None]:
    """Disable automatic collection inside the block; restore the previous setting after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
