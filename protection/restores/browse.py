"""Browsing a recovery point before restoring it (everything read through the engine).

* ADLS: a container's folders and files with sizes (`list_folder`), and one blob streamed out of the
  store (`open_blob`: the engine restores that single file into a private folder that is unlinked at
  once, so the download is the open file and nothing stays on disk).
* Elastic SAN: the image's size, the blocks that hold data and the checksum recorded at backup.
* PostgreSQL: a database dump's table of contents, from ``pg_restore --list`` reading the dump's head
  straight from the engine (it stops reading once it has the table of contents).

Each takes the acting principal first and asks `access` (data access: the live-read right or the
restore permission, and an instance state that allows restore) before reading anything.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError

from protection import processes
from protection.jobs import runner as jobs
from protection.restores import access, layout
from security.audit import guarded
from security.operations import RESTORE

MAX_ENTRIES = 2000


class NotInPoint(LookupError):
    """The container, path or database is not in the recovery point (or cannot be read from it)."""


@dataclass
class Entry:
    name: str
    path: str
    is_folder: bool
    size: int = 0
    files: int = 0
    mtime_ns: int = 0

    @property
    def modified(self):
        import datetime as dt

        return dt.datetime.fromtimestamp(self.mtime_ns / 1e9, tz=dt.timezone.utc) if self.mtime_ns else None


@dataclass
class Listing:
    container: str
    path: str
    entries: list = field(default_factory=list)
    truncated: bool = False
    total_files: int = 0
    total_bytes: int = 0

    @property
    def crumbs(self) -> list[tuple[str, str]]:
        out, walked = [], []
        for part in [p for p in self.path.split("/") if p]:
            walked.append(part)
            out.append((part, "/".join(walked)))
        return out

    @property
    def parent(self) -> str | None:
        if not self.path:
            return None
        return self.path.rstrip("/").rpartition("/")[0]


def _part(point, container: str) -> layout.Part:
    part = next((p for p in layout.containers(point) if p.item == container), None)
    if part is None:
        raise NotInPoint(f"The recovery point has no container '{container}'.")
    return part


def _clean_path(path: str) -> str:
    from portal.inventory import blobs

    path = (path or "").strip().strip("/")
    if not path:
        return ""
    try:
        blobs.validate_blob_name(path, field=None, what="Path")
    except ValidationError as exc:
        raise NotInPoint(" ".join(exc.messages)) from None
    return path


def list_folder(principal, point, container: str, path: str = "") -> Listing:
    part = _part(point, container)  # first: only a name the point holds reaches the check and the log
    access.require(principal, point, access.LIST, container, what="Browse recovery point files")
    path = _clean_path(path)
    listing = Listing(container, path)
    folders: dict[str, Entry] = {}
    files: list[Entry] = []
    found_folder = not path
    prefix = f"{path}/" if path else ""
    with layout.open_point_store(point) as store:
        for rec in store.records(part.snapshot_id):
            t = rec.get("t")
            if t not in ("f", "d"):
                continue
            p = rec["p"]
            if path and p == path and t == "d":
                found_folder = True
                continue
            if not p.startswith(prefix):
                continue
            rest = p[len(prefix):]
            head, sep, _tail = rest.partition("/")
            if t == "f":
                listing.total_files += 1
                listing.total_bytes += int(rec.get("s", 0))
            if sep:  # below a direct sub-folder
                folder = folders.setdefault(head, Entry(head, prefix + head, True))
                if t == "f":
                    folder.files += 1
                    folder.size += int(rec.get("s", 0))
            elif t == "d":
                folders.setdefault(head, Entry(head, prefix + head, True, mtime_ns=int(rec.get("mt", 0))))
            else:
                files.append(Entry(head, p, False, int(rec.get("s", 0)), mtime_ns=int(rec.get("mt", 0))))
    if not found_folder:
        raise NotInPoint(f"The container '{container}' in this recovery point has no folder '{path}'.")
    entries = sorted(folders.values(), key=lambda e: e.name) + sorted(files, key=lambda e: e.name)
    listing.truncated = len(entries) > MAX_ENTRIES
    listing.entries = entries[:MAX_ENTRIES]
    return listing


class _Download(object):
    """An open restored file whose folder is already gone (closing it frees the space)."""

    def __init__(self, fileobj, name: str, size: int):
        self._f = fileobj
        self.name_for_download = name
        self.size = size

    def __getattr__(self, item):
        return getattr(self._f, item)

    def __iter__(self):
        return iter(lambda: self._f.read(1024 * 1024), b"")


def open_blob(principal, point, container: str, path: str):
    """One blob of the recovery point as an open file (logged as a restore of that blob).

    Needs the restore permission and the right to read the blob live (see `access`)."""
    from portal.inventory import fs
    from vaults.store import DamageError

    part = _part(point, container)
    access.require(principal, point, access.DOWNLOAD, container, what="Download from a recovery point")
    path = _clean_path(path)
    if not path:
        raise NotInPoint("Choose a blob to download.")
    details = {"recoveryPointId": str(point.pk), "container": container, "blob": path, "download": True}
    with guarded(principal, RESTORE, point.instance, details=details):
        with layout.open_point_store(point) as store:
            record = next((r for r in store.records(part.snapshot_id) if r.get("t") == "f" and r.get("p") == path), None)
            if record is None:
                raise NotInPoint(f"The container '{container}' in this recovery point has no blob '{path}'.")
            with fs.scratch_folder() as folder:
                try:
                    store.restore(part.snapshot_id, folder, paths=[path])
                except DamageError as exc:
                    raise NotInPoint(f"The blob '{path}' is damaged in this recovery point ({exc}).") from None
                handle = open(os.path.join(folder, *path.split("/")), "rb")
    return _Download(handle, path.rsplit("/", 1)[-1], int(record.get("s", 0)))


@dataclass
class VolumeFacts:
    name: str
    size_bytes: int
    data_bytes: int
    checksum: str
    snapshot_resource_id: str
    block_size: int = 0


def volume_facts(point) -> VolumeFacts:
    part = layout.volume_part(point)
    backup = (point.verify_details or {}).get("backup") or {}
    return VolumeFacts(name=part.item, size_bytes=part.bytes or point.logical_bytes,
                       data_bytes=int(backup.get("blocks_bytes") or point.transferred_bytes or 0),
                       checksum=layout.volume_checksum(point), snapshot_resource_id=point.snapshot_resource_id)


@dataclass
class TocEntry:
    dump_id: str
    kind: str
    schema: str
    name: str
    owner: str
    line: str


@dataclass
class Toc:
    database: str
    entries: list
    header: list
    error: str = ""


KINDS = ["TABLE DATA", "SEQUENCE SET", "SEQUENCE OWNED BY", "FK CONSTRAINT", "DEFAULT ACL", "INDEX ATTACH",
         "MATERIALIZED VIEW DATA", "TABLE", "VIEW", "SCHEMA", "SEQUENCE", "INDEX", "CONSTRAINT", "FUNCTION", "DEFAULT",
         "COMMENT", "EXTENSION", "TYPE", "TRIGGER", "ACL", "DATABASE", "ENCODING", "STDSTRINGS", "SEARCHPATH",
         "MATERIALIZED VIEW", "DOMAIN", "AGGREGATE", "RULE", "POLICY", "PUBLICATION", "COLLATION"]


def _parse_line(line: str) -> TocEntry | None:
    # "5; 2615 16390 SCHEMA - sales postgres"  /  "3371; 0 16399 TABLE DATA sales customers postgres"
    head, sep, rest = line.partition(";")
    if not sep or not head.strip().isdigit():
        return None
    words = rest.split()
    body = " ".join(words[2:]) if len(words) > 2 else rest.strip()
    kind = next((k for k in KINDS if body.startswith(k + " ")), body.split(" ", 1)[0])
    tail = body[len(kind):].split()
    schema = tail[0] if tail else ""
    owner = tail[-1] if len(tail) >= 3 else ""
    name = " ".join(tail[1:-1]) if len(tail) >= 3 else (tail[1] if len(tail) > 1 else "")
    return TocEntry(head.strip(), kind, "" if schema == "-" else schema, name, owner, line)


def table_of_contents(principal, point, database: str) -> Toc:
    """``pg_restore --list`` of one database's dump, read from the engine."""
    from vaults.store import DamageError

    from protection.datasources.postgres import tool

    part = next((p for p in layout.databases(point) if p.database == database), None)
    if part is None:
        raise NotInPoint(f"The recovery point has no database '{database}'.")
    access.require(principal, point, access.LIST, database, what="Table of contents of a recovery point")
    try:
        command = [tool("pg_restore"), "--list"]
    except jobs.JobError as exc:
        return Toc(database, [], [], exc.message)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = processes.popen(command, stdin=subprocess.PIPE, stdout=out, stderr=err)
        problem = ""
        try:
            with layout.open_point_store(point) as store:
                try:
                    store.restore_stream(part.snapshot_id, proc.stdin)
                except BrokenPipeError:
                    pass  # it had the table of contents and stopped reading
                except DamageError as exc:
                    problem = f"The dump is damaged in this recovery point: {exc}"
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
            code = proc.wait(timeout=120)
        finally:
            processes.release(proc)
        out.seek(0)
        err.seek(0)
        text = out.read().decode("utf-8", "replace")
        if code != 0 and not problem:
            problem = f"pg_restore --list exited with status {code}: {err.read().decode('utf-8', 'replace')[-800:]}"
    header = [line[1:].strip() for line in text.splitlines() if line.startswith(";") and line[1:].strip()]
    entries = [e for e in (_parse_line(line) for line in text.splitlines() if line and not line.startswith(";")) if e]
    return Toc(database, entries, header[:12], problem)
