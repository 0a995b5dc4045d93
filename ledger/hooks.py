"""Documented import path (README): `from ledger.hooks import PipelineRecorder`. Lives in ledger.cohorts.hooks."""

from .cohorts.hooks import PipelineRecorder, hook_event_id

__all__ = ["PipelineRecorder", "hook_event_id"]
