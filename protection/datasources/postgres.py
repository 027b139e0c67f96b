"""PostgreSQL flexible servers: the whole server, as globals plus one ``pg_dump -Fc`` per database.

Each dump is streamed straight into `Store.backup_stream` (no temporary file). The password reaches
the tools through ``PGPASSWORD`` only. The stream's reader checks the tool's exit status when the
output ends, *before* the engine writes the snapshot's manifest: a failed dump raises there, the
engine aborts, and no snapshot of a half dump can exist.

Databases come from the inventory's discovery (never templates, Strongroom's own database or
``test_*`` ones). A server newer than the worker's ``pg_dump`` cannot be dumped by it: the job fails
with ``UserErrorPostgresVersionMismatch`` and says which versions met.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tempfile

from protection import datasource_types, jobs, processes
from protection.datasources.base import BackupOutcome, Driver, RunContext, snapshot_stats

VERSION_MISMATCH = "UserErrorPostgresVersionMismatch"
DUMP_FAILED = "UserErrorPostgresDumpFailed"
CONNECT_FAILED = "UserErrorPostgresConnectionFailed"
GLOBALS_ITEM = "globals.sql"


class DumpFailed(Exception):
    def __init__(self, what: str, returncode: int, stderr: str):
        self.what, self.returncode, self.stderr = what, returncode, stderr.strip()
        super().__init__(f"{what} exited with status {returncode}: {self.stderr}")


class ProcessReader(io.RawIOBase):
    """A tool's stdout as a binary stream that raises at its end unless the tool exited with 0."""

    def __init__(self, proc: subprocess.Popen, what: str, stderr_file):
        self.proc, self.what, self.stderr_file = proc, what, stderr_file
        self.bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.proc.stdout.readinto(buffer)
        if n:
            self.bytes += n
            return n
        returncode = self.proc.wait()
        if returncode != 0:
            self.stderr_file.seek(0)
            raise DumpFailed(self.what, returncode, self.stderr_file.read().decode("utf-8", "replace"))
        return 0


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise jobs.JobError("UserErrorPostgresToolMissing",
                            f"'{name}' is not installed on the worker: install the PostgreSQL client tools there.")
    return path


def local_major_version() -> tuple[int, str]:
    out = subprocess.run([tool("pg_dump"), "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    match = re.search(r"(\d+)(?:\.(\d+))?", out)
    if not match:
        raise jobs.JobError("UserErrorPostgresToolMissing", f"Could not tell the version of pg_dump from '{out}'.")
    return int(match.group(1)), out


def version_mismatch_message(server_version: str, local: str) -> str:
    return (f"The server runs PostgreSQL {server_version}, which is newer than this worker's {local}. pg_dump cannot "
            "back up a server newer than itself: install the PostgreSQL client tools of the server's major version "
            "(or newer) on the worker, then run the backup again.")


def source_id(instance, item: str) -> str:
    return f"bi:{instance.id}:pg:{item}"


class PostgresDriver(Driver):
    datasource_type = datasource_types.POSTGRES_FLEX
    datastore = "VaultStore"

    def server(self, instance):
        from portal.inventory.models import PostgresServer

        server = PostgresServer.objects.filter(resource_id__iexact=instance.datasource_resource_id).first()
        if server is None:
            raise jobs.JobError("UserErrorDatasourceNotFound", f"The server '{instance.datasource_name}' no longer exists.")
        return server

    # -- the run -----------------------------------------------------------------------------
    def backup(self, instance, run: RunContext) -> BackupOutcome:
        from portal.inventory import postgres
        from vaults.storage import open_store

        server = self.server(instance)
        params = server.connection_params()
        try:
            with postgres.connect(params) as conn:
                server_num = int(conn.execute("SHOW server_version_num").fetchone()[0])
                server_version = conn.execute("SHOW server_version").fetchone()[0]
            databases = postgres.discover_databases(params)
        except Exception as exc:  # psycopg errors: the server is down or refuses us
            raise jobs.JobError(CONNECT_FAILED, postgres.describe_error(exc, params)) from None
        local_major, local_text = local_major_version()
        if server_num // 10000 > local_major:
            raise jobs.JobError(VERSION_MISMATCH, version_mismatch_message(server_version, local_text))

        run.report(items_total=1 + len(databases), current_item="Dumping roles and tablespaces", force=True)
        outcome = BackupOutcome(manifests=[], details={"server_version": server_version, "pg_dump": local_text,
                                                       "databases": [d.name for d in databases]})
        tags = [f"instance:{instance.id}", f"job:{run.job.pk}"]
        with open_store(instance.vault) as store:
            items = [(GLOBALS_ITEM, [tool("pg_dumpall"), "--globals-only", "--no-password"], params)]
            items += [(f"{db.name}.dump", [tool("pg_dump"), "--format=custom", "--no-password"], params.with_database(db.name))
                      for db in databases]
            for item, command, item_params in items:
                run.check_cancel()
                database = item_params.dbname if item != GLOBALS_ITEM else ""
                try:
                    snap = self._dump_into(store, command, item, item_params, instance, run, tags)
                except DumpFailed as exc:
                    if "server version mismatch" in exc.stderr:
                        raise jobs.JobError(VERSION_MISMATCH, version_mismatch_message(server_version, local_text)) from None
                    if database and not postgres.database_exists(params, database):
                        outcome.warnings.append(f"The database '{database}' was dropped during the backup; it is not in this recovery point.")
                        continue
                    raise jobs.JobError(DUMP_FAILED, f"Dumping {database or 'the globals'} failed: {exc}") from None
                run.remember(lambda: open_store(instance.vault), snap.id)
                run.item_done(snap)
                size = int(snap.stats.get("size", 0))
                stats = snapshot_stats(snap)
                outcome.manifests.append({"item": item, "kind": "stream", "id": snap.id, "bytes": size,
                                          "database": database})
                outcome.logical_bytes += size
                outcome.stored_bytes += stats["bytes_stored"]
                outcome.transferred_bytes += stats["bytes_read"]
                outcome.item_count += 1
        return outcome

    def _dump_into(self, store, command, item, params, instance, run, tags):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(params.env())  # PGHOST, PGPORT, PGUSER, PGDATABASE and PGPASSWORD: never on the command line
        run.report(current_item=f"Dumping {item}", force=True)
        with tempfile.TemporaryFile() as stderr_file:
            # In its own process group, registered with the job: a cancel or a stall kills the group,
            # which also wakes this thread when the tool writes nothing (waiting on a lock).
            with processes.running(command, job=run.job, stdout=subprocess.PIPE, stderr=stderr_file,
                                   stdin=subprocess.DEVNULL, env=env, bufsize=0) as proc:
                try:
                    reader = ProcessReader(proc, os.path.basename(command[0]), stderr_file)
                    return store.backup_stream(reader, name=item, source_id=source_id(instance, item),
                                               tags=tags + [f"item:{item}"], progress=run.engine_progress(item),
                                               cancel=run.cancel, retain_until=run.retain_until,
                                               retention_mode=run.retention_mode)
                except Exception:
                    run.progress.raise_interrupt()  # stopped for a cancel or a stall: say that
                    raise
                finally:
                    proc.stdout.close()
