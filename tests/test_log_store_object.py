"""The object-store backend passes the LogStore conformance suite: on the real S3 server
(threads and processes), and on obstore's local-filesystem store, which offers the same
put-if-absent through the same client (threads)."""

from __future__ import annotations

from itertools import count

import pytest
from conformance.log_store import LogStoreConformance, MultiProcessConformance

from ledger import LogStore
from ledger.log.object_store import INDEX_DIR_VARIABLE, ObjectLogStore

_n = count()


class TestObjectLogStoreOnS3(LogStoreConformance, MultiProcessConformance):
    def create_store(self) -> ObjectLogStore:
        url: str = self.request.getfixturevalue("s3_url")
        return ObjectLogStore.from_url(f"{url}-{next(_n)}")

    def open_again(self, store: LogStore) -> ObjectLogStore:
        return ObjectLogStore.from_url(store.location)  # its own client, as another machine has

    def location(self, store: LogStore) -> str:
        return store.location  # the child finds the endpoint and credentials in its environment


class TestObjectLogStoreOnLocalObjects(LogStoreConformance):
    def create_store(self) -> ObjectLogStore:
        from obstore.store import LocalStore

        root = self.tmp / f"objects-{next(_n)}"
        return ObjectLogStore(LocalStore(root, mkdir=True), f"local-objects:{root}")

    def open_again(self, store: LogStore) -> ObjectLogStore:
        assert isinstance(store, ObjectLogStore)
        return ObjectLogStore(store.objects.store, store.location)


class TestObjectLogStoreOnS3WithIndex(LogStoreConformance, MultiProcessConformance):
    """The same contract when writers keep the index in a local directory
    ($COHORT_LEDGER_INDEX_DIR): this machine's processes share it, the children included."""

    def create_store(self) -> ObjectLogStore:
        url: str = self.request.getfixturevalue("s3_url")
        monkeypatch: pytest.MonkeyPatch = self.request.getfixturevalue("monkeypatch")
        monkeypatch.setenv(INDEX_DIR_VARIABLE, str(self.tmp / "index"))
        return ObjectLogStore.from_url(f"{url}-{next(_n)}")

    def open_again(self, store: LogStore) -> ObjectLogStore:
        return ObjectLogStore.from_url(store.location)  # another process of this machine: the same index

    def location(self, store: LogStore) -> str:
        return store.location
