"""Projections: the files the pipeline and analysis code read, rendered from a folded State.

`build` is the entry point; `manifest`, `membership` and `files` each own one kind of
output or concern. Depends on `ledger`, never the reverse (the CLI excepted).
"""

from .build import BuildReport, build, render

__all__ = ["BuildReport", "build", "render"]
