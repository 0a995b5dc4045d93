"""The in-memory backend passes the LogStore conformance suite (threads; it has no processes)."""

from __future__ import annotations

from conformance.log_store import LogStoreConformance

from ledger import LogStore, MemoryLogStore


class TestMemoryLogStore(LogStoreConformance):
    def create_store(self) -> MemoryLogStore:
        return MemoryLogStore()

    def open_again(self, store: LogStore) -> LogStore:
        return store  # one process, one store object: handles are Ledgers over it
