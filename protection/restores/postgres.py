"""Restore PostgreSQL recovery points: one database into a new database, or the dumps as files.

*As a database* (a Strongroom extension, decision 2): the new database is created from ``template0``
through the inventory service (as the vault identity, which needs Contributor on the target server),
then the database's ``pg_dump -Fc`` stream is piped from the engine into ``pg_restore`` (password in
``PGPASSWORD``, ``--single-transaction --exit-on-error``, exit status checked). A failure, a damaged
chunk or a cancel drops the new database again through the inventory service, so the server ends with
the complete database or without it.

*As files* (as Azure does): the dumps (and ``globals.sql``) are streamed from the engine into blobs of
the chosen container through the inventory's blob upload (as the vault identity, which needs Storage
Blob Data Contributor). A blob becomes visible only when its stream ended without damage; a failure
removes every blob of the restore.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import subprocess
import tempfile
import threading

from django.urls import reverse

from protection import processes
from protection.datasources.postgres import DumpFailed, timeout_error, tool
from protection.jobs import runner as jobs
from protection.restores import layout, validation

logger = logging.getLogger(__name__)

RESTORE_FAILED = "UserErrorPostgresRestoreFailed"
_DONE = object()


class _Stopped(Exception):
    """The reader of an engine stream stopped early."""


def _damaged(item: str, exc) -> jobs.JobError:
    return jobs.JobError("UserErrorRecoveryPointDamaged",
                         f"The recovery point's dump '{item}' is damaged ({len(getattr(exc, 'chunks', []) or [])} damaged "
                         "chunk(s)); nothing of it was kept. Run Verify on the recovery point, and restore from another one.")


# =================================================================================================
# Restore as a database
# =================================================================================================


def restore_database(job, point, target, resolved, run) -> dict:
    """Restore one database of the point into a new database on the target server (see the module
    docstring): the complete database, or none."""
    from portal.inventory import postgres

    server = resolved["server"]
    part = resolved["part"]
    identity = point.instance.vault.identity
    run.report(bytes_total=part.bytes or None, items_total=1,
               current_item=f"Creating database {target.database_name} on {server.name}", force=True)
    database = _create_database(job, identity, server, target.database_name)
    try:
        run.report(current_item=f"Restoring {target.database} into {target.database_name}", force=True)
        timeouts = postgres.tool_timeouts()
        params = server.connection_params(target.database_name).with_application(f"strongroom-job-{job.pk}") \
            .with_timeouts(timeouts)
        _pipe_into_pg_restore(job, point, part, target, params, postgres.StatementWatch(params, timeouts), run)
        run.check_cancel()
        counts = postgres.table_counts(params)
    except BaseException:
        _drop_database(identity, server, database, target.database_name)
        raise
    run.report(bytes_done=part.bytes, items_done=1, force=True)
    url = reverse("portal:postgres_database_detail", args=[database.pk])
    return {
        "summary": {
            "itemsRestored": 1,
            "bytesRestored": part.bytes,
            "target": f"{server.name}/{target.database_name}",
            "targetResourceId": database.resource_id,
            "sourceDatabase": target.database,
            "tables": counts,
            "rows": sum(counts.values()),
            "links": [{"label": f"Database {target.database_name} on {server.name}", "url": url}],
        },
        "bytes": part.bytes,
        "items": 1,
    }


def _create_database(job, identity, server, name: str):
    """The new database, created from ``template0`` as the vault identity (and noted on the job)."""
    from portal.inventory import services as inventory
    from security.guards import GuardDenied

    try:
        database = inventory.create_database(identity, server, name=name)
    except GuardDenied as exc:
        raise jobs.JobError(validation.MISSING_PERMISSIONS,
                            f"{validation.MISSING_PERMISSIONS_TEXT} {exc.decision.reason}") from None
    _remember_created(job, {"postgresDatabaseId": database.pk})
    return database


def _drop_database(identity, server, database, name: str) -> None:
    """A failed, damaged or cancelled restore drops its database again: never half-restored."""
    from portal.inventory import postgres
    from portal.inventory import services as inventory

    try:
        inventory.delete_database(identity, database)
    except Exception:
        logger.exception("Could not drop %s after a failed restore", name)
        with contextlib.suppress(Exception):  # the database must not stay half-restored
            postgres.drop_database(server.connection_params(), name)


def _pipe_into_pg_restore(job, point, part, target, params, watch, run) -> None:
    """Stream the dump from the engine into ``pg_restore`` (password in ``PGPASSWORD``, one transaction,
    exit on the first error); raises when pg_restore did not succeed."""
    from vaults.store import Cancelled, DamageError

    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(params.env())  # the password travels in PGPASSWORD, never on the command line
    # pg_restore resets the session's timeouts and has no --lock-wait-timeout: the watch enforces them.
    command = [tool("pg_restore"), "--no-owner", "--no-acl", "--exit-on-error", "--single-transaction",
               "--no-password", f"--dbname={target.database_name}"]
    with tempfile.TemporaryFile() as stderr_file, watch:
        # Its own process group, registered with the job: a cancel or a stall kills it (see processes).
        proc = processes.popen(command, job=job, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               stderr=stderr_file, env=env)
        broken = False
        try:
            with layout.open_point_store(point) as store:
                try:
                    store.restore_stream(part.snapshot_id, proc.stdin, progress=run.engine_progress(part.item),
                                         cancel=run.cancel)
                except BrokenPipeError:
                    broken = True  # pg_restore stopped reading: its exit status says why
                except DamageError as exc:
                    raise _damaged(part.item, exc) from None
                except Cancelled:
                    raise jobs.JobCancelled() from None
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
            # The last byte is in; pg_restore may still build indexes for a long while.
            run.report(phase="finishing", current_item=f"pg_restore finishing {target.database_name} "
                                                       "(indexes, constraints, commit)", force=True)
            returncode = proc.wait()
            run.progress.raise_interrupt()  # killed for a cancel or a stall: that is the outcome
        finally:
            processes.release(proc)
            with contextlib.suppress(Exception):
                proc.stdin.close()
        stderr_file.seek(0)
        errors = stderr_file.read().decode("utf-8", "replace").strip()
    if returncode != 0 or broken:
        timed_out = timeout_error(watch, DumpFailed("pg_restore", returncode, errors),
                                  f"Restoring '{target.database}' into '{target.database_name}'")
        if timed_out is not None:
            raise timed_out
        raise jobs.JobError(RESTORE_FAILED, f"pg_restore exited with status {returncode} restoring "
                            f"'{target.database}' into '{target.database_name}': {errors[-1500:] or 'no message'}")


def _remember_created(job, info: dict) -> None:
    """Note on the job what it created, so a re-run after a lost worker can remove it first."""
    from protection.models import Job

    extended = dict(job.extended_info or {})
    extended.setdefault("created", {}).update(info)
    job.extended_info = extended
    Job.objects.filter(pk=job.pk).update(extended_info=extended)


def remove_leftovers(job) -> None:
    """A re-run of a job whose worker died: drop the database the earlier attempt created."""
    from portal.inventory import services as inventory
    from portal.inventory.models import PostgresDatabase

    created = (job.extended_info or {}).get("created") or {}
    pk = created.get("postgresDatabaseId")
    if not pk:
        return
    database = PostgresDatabase.objects.select_related("server").filter(pk=pk, created_by_strongroom=True).first()
    if database is not None:
        inventory.delete_database(job.instance.vault.identity, database)


# =================================================================================================
# Restore as files
# =================================================================================================


class EngineStream:
    """A stream snapshot as an iterable of byte chunks (what the blob upload reads).

    The engine writes on a thread into a bounded queue; damage, a cancel or a failure arrives as the
    exception the iteration raises, so the blob being written never becomes visible."""

    def __init__(self, point, snapshot_id: str, run, label: str):
        self.point, self.snapshot_id, self.run, self.label = point, snapshot_id, run, label
        self.bytes = 0
        self.error = None

    def __iter__(self):
        chunks: queue.Queue = queue.Queue(maxsize=8)
        stop = threading.Event()

        def put(item) -> None:
            while not stop.is_set():
                try:
                    chunks.put(item, timeout=0.2)
                    return
                except queue.Full:
                    continue

        class Sink:
            def write(self, data) -> int:
                if stop.is_set():  # the reader gave up: stop the engine at once
                    raise _Stopped()
                put(bytes(data))
                return len(data)

            def flush(self) -> None:
                return None

        def produce() -> None:
            try:
                with layout.open_point_store(self.point) as store:
                    store.restore_stream(self.snapshot_id, Sink(), cancel=lambda: stop.is_set() or self.run.cancel())
                put(_DONE)
            except BaseException as exc:  # handed to the reader
                put(exc)

        # the producer thread would query with a database connection of its own: resolve (and cache on the
        # vault object) where the vault's store lives here, in the job's thread
        from vaults.storage import s3_location

        s3_location(self.point.instance.vault)
        worker = threading.Thread(target=produce, name=f"restore-{self.label}", daemon=True)
        worker.start()
        try:
            while True:
                item = chunks.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    self.error = item
                    raise item
                self.bytes += len(item)
                self.run.report(bytes_done=self.run.bytes_base + self.bytes, current_item=self.label)
                if self.run.cancelled:
                    raise jobs.JobCancelled()
                yield item
        finally:
            stop.set()
            worker.join(timeout=30)


def restore_files(job, point, target, resolved, run) -> dict:
    from portal.inventory import services as inventory
    from security.guards import GuardDenied
    from vaults.store import Cancelled, DamageError

    container = resolved["container"]
    files = resolved["files"]
    identity = point.instance.vault.identity
    run.report(bytes_total=sum(p.bytes for _, p in files) or None, items_total=len(files),
               current_item=f"Writing {len(files)} file(s) into {container.name}", force=True)
    streams = []
    uploads = []
    for name, part in files:
        stream = EngineStream(point, part.snapshot_id, run, name)
        streams.append((name, part, stream))
        uploads.append(inventory.Upload(name, _Counted(stream, run, len(streams))))
    try:
        written = inventory.upload_blobs(identity, container, uploads)
    except GuardDenied as exc:
        raise jobs.JobError(validation.MISSING_PERMISSIONS,
                            f"{validation.MISSING_PERMISSIONS_TEXT} {exc.decision.reason}") from None
    except DamageError as exc:
        bad = next((n for n, _p, s in streams if s.error is not None), "a dump")
        raise _damaged(bad, exc) from None
    except (Cancelled, jobs.JobCancelled):
        raise jobs.JobCancelled() from None
    except Exception as exc:
        from django.core.exceptions import ValidationError

        if isinstance(exc, ValidationError):
            raise jobs.JobError(validation.FILES_EXIST, " ".join(exc.messages)) from None
        raise
    size = sum(n for _, n in written)
    url = reverse("portal:container_detail", args=[container.pk])
    return {
        "summary": {
            "itemsRestored": len(written),
            "bytesRestored": size,
            "target": f"{container.account.name}/{container.name}",
            "targetResourceId": container.resource_id,
            "files": [{"name": n, "bytes": b} for n, b in written],
            "links": [{"label": f"Container {container.name} in {container.account.name}", "url": url}],
        },
        "bytes": size,
        "items": len(written),
    }


class _Counted:
    """Moves the job's item and byte bases on when one file's stream ends."""

    def __init__(self, stream: EngineStream, run, index: int):
        self.stream, self.run, self.index = stream, run, index

    def __iter__(self):
        yield from self.stream
        self.run.bytes_base += self.stream.bytes
        self.run.items_base = self.index
        self.run.report(bytes_done=self.run.bytes_base, items_done=self.index, force=True)
