"""`build --out s3://bucket/prefix/data`: projection files as objects (docs/FORMAT.md §10.6).

The files and `_projection.json` are the same bytes a build writes into a directory, and the
ownership rules are the same (files.py): before writing a file it did not own yet, the build
records the union of old and new; it removes only objects the previous record lists, whose
names are ours and whose bytes still hash to what was recorded; an object someone else put
there is never touched. A put replaces one object atomically, so a reader sees each file old
or new, never half of one; there is no rename, so a build that fails midway leaves some
files new and some old, all of them named in `_projection.json`. Unchanged files (same
size, then same bytes) are not rewritten.

No lock: two builds into one prefix at once each write whole files, but the prefix may end
holding a mix of both and the record of either. Run one build per output prefix at a time.
"""

from __future__ import annotations

from typing import Any

from ledger import InvalidInputError, LogStore, ObjectLogStore
from ledger.log.object_store import RESERVED
from ledger.log.objects import Objects, connect, split_url

from .files import OWNERSHIP_FILE, Changes, check_names, owned, ownership_record, previous_about, sha256_hex


class ObjectOut:
    """An output prefix, read and written by relative name."""

    def __init__(self, location: str) -> None:
        self.path = location
        self.objects = Objects(connect(location), location)

    def read(self, rel: str) -> bytes | None:
        return self.objects.get(rel)

    def holds(self, rel: str, data: bytes) -> bool:
        meta = self.objects.head(rel)
        return meta is not None and meta.get("size") == len(data) and self.objects.get(rel) == data

    def put(self, rel: str, data: bytes) -> None:
        if not self.holds(rel, data):
            self.objects.put(rel, data)

    def remove(self, rel: str, digest: str) -> bool:
        """Delete `rel` if its bytes still hash to `digest` (ours, unchanged since we wrote it)."""
        data = self.objects.get(rel)
        if data is None or sha256_hex(data) != digest:
            return False
        self.objects.delete(rel)
        return True


def out_location(url: str, ledger: LogStore) -> str:
    """The normalised output URL, refused if it is the ledger's prefix or inside its own objects."""
    scheme, bucket, prefix = split_url(url)
    location = f"{scheme}://{bucket}" + (f"/{prefix}" if prefix else "")
    if isinstance(ledger, ObjectLogStore):
        own = ledger.location
        if location == own or own.startswith(location + "/"):
            raise InvalidInputError(f"--out {url} is or contains the ledger's prefix; use another prefix")
        for name in RESERVED:
            if location == f"{own}/{name}" or location.startswith(f"{own}/{name}/"):
                raise InvalidInputError(f"--out {url} is (inside) the ledger's {name}; use another prefix")
    return location


def replace_objects(location: str, files: dict[str, bytes], seq: int, chain_hash: str,
                    about: dict[str, Any]) -> Changes:
    """Make the prefix hold `files` (relative name -> bytes) and nothing else of ours;
    `about` as for `files.replace_files`."""
    check_names(files)
    out = ObjectOut(location)
    previous = owned(out)
    before: dict[str, str] = previous["files"] if previous else {}
    digests = {rel: sha256_hex(data) for rel, data in files.items()}
    written = [rel for rel in sorted(files) if not out.holds(rel, files[rel])]
    unchanged = [rel for rel in sorted(files) if rel not in written]
    if not digests.keys() <= before.keys():  # name every file before making it
        out.put(OWNERSHIP_FILE, ownership_record(previous["seq"] if previous else None,
                                                 previous["hash"] if previous else None,
                                                 previous_about(previous), {**digests, **before}))
    for rel in written:
        out.objects.put(rel, files[rel])
    removed = [rel for rel in sorted(before.keys() - digests.keys()) if out.remove(rel, before[rel])]
    out.put(OWNERSHIP_FILE, ownership_record(seq, chain_hash, about, digests))
    return Changes(written, unchanged, removed)
