"""The local directory backend passes the LogStore conformance suite, threads and processes."""

from __future__ import annotations

from itertools import count

from conformance.log_store import LogStoreConformance, MultiProcessConformance

from ledger import FileLogStore, LogStore

_n = count()


class TestFileLogStore(LogStoreConformance, MultiProcessConformance):
    has_tail = True

    def create_store(self) -> FileLogStore:
        return FileLogStore(self.tmp / f"ledger-{next(_n)}")

    def open_again(self, store: LogStore) -> FileLogStore:
        assert isinstance(store, FileLogStore)
        return FileLogStore(store.path)  # its own lock descriptor, as another process has

    def location(self, store: LogStore) -> str:
        return store.location

    def leave_torn_bytes(self, store: LogStore, data: bytes) -> None:
        assert isinstance(store, FileLogStore)
        with open(store.log_path, "ab") as f:
            f.write(data)
