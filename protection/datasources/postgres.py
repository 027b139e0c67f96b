"""PostgreSQL flexible servers: the whole server, as globals plus one ``pg_dump -Fc`` per database.

Each dump is streamed straight into `Store.backup_stream` (no temporary file). The password reaches
the tools through ``PGPASSWORD`` only. The stream's reader checks the tool's exit status when the
output ends, *before* the engine writes the snapshot's manifest: a failed dump raises there, the
engine aborts, and no snapshot of a half dump can exist.

The server's login need not be a superuser (Azure's admin login is not): the globals are dumped with
``--no-role-passwords`` (which reads ``pg_roles``, not ``pg_authid``, and keeps every password hash
out of the recovery point), and every database the login can read is dumped. Every database it
skips (templates aside) is named in the job with the reason, and the job ends CompletedWithWarnings:
test_* ones, Strongroom's own, the maintenance database, and those the login may not read.

A table locked by another session fails the job with ``UserErrorPostgresLockTimeout`` after the
lock-wait timeout (``--lock-wait-timeout`` and `StatementWatch`), a statement that runs past the
statement timeout with ``UserErrorPostgresStatementTimeout``; the job never waits forever. A server
newer than the worker's ``pg_dump`` fails with ``UserErrorPostgresVersionMismatch``.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tempfile

from protection import datasource_types, processes
from protection.datasources.base import BackupOutcome, Driver, RunContext, snapshot_stats
from protection.jobs import runner as jobs

VERSION_MISMATCH = "UserErrorPostgresVersionMismatch"
DUMP_FAILED = "UserErrorPostgresDumpFailed"
CONNECT_FAILED = "UserErrorPostgresConnectionFailed"
LOCK_TIMEOUT = "UserErrorPostgresLockTimeout"
STATEMENT_TIMEOUT = "UserErrorPostgresStatementTimeout"
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


_ROLE_LINE = re.compile(rb'^(?:CREATE ROLE|ALTER ROLE|COMMENT ON ROLE)\s+("(?:[^"]|"")+"|[^\s;]+)')
_GRANT_LINE = re.compile(rb'^GRANT\s.*\sTO\s+("(?:[^"]|"")+"|[^\s;]+)')


def own_roles_only(globals_sql: bytes, login: str) -> bytes:
    """The globals of a server that holds only its login's databases (a training sandbox on a shared
    cluster): the roles of other logins are left out, so a backup never lists another sandbox's."""
    def name(raw: bytes) -> str:
        text = raw.decode("utf-8", "replace")
        return text[1:-1].replace('""', '"') if text.startswith('"') else text

    kept = []
    for line in globals_sql.splitlines(keepends=True):
        role = _ROLE_LINE.match(line) or _GRANT_LINE.match(line)
        if role is None or name(role.group(1)) == login:
            kept.append(line)
    return b"".join(kept)


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


def timeout_error(watch, exc: DumpFailed | None, doing: str) -> jobs.JobError | None:
    """The coded error for a tool stopped by a timeout (the watch's or the server's), else None."""
    if watch is not None and watch.tripped is not None:
        kind, text = watch.tripped
    elif exc is not None and "statement timeout" in exc.stderr and "LOCK TABLE" in exc.stderr:
        # pg_dump's own --lock-wait-timeout fired before the watch: its stderr names the table.
        table = re.search(r"LOCK TABLE (?:ONLY )?(\S+) IN", exc.stderr)
        kind, text = "lock", (f"waited for a lock on the table {table.group(1) if table else '(unknown)'}, held by "
                              "another session, longer than the lock-wait timeout")
    elif exc is not None and ("lock timeout" in exc.stderr or "could not obtain lock" in exc.stderr):
        kind, text = "lock", "waited for a lock held by another session longer than the lock-wait timeout"
    elif exc is not None and "statement timeout" in exc.stderr:
        kind, text = "statement", "one statement ran longer than the statement timeout"
    else:
        return None
    if kind == "lock":
        return jobs.JobError(LOCK_TIMEOUT, f"{doing} stopped: it {text}. Run the job again once that session has "
                             "finished (or end it); the timeout is the STRONGROOM_PG_LOCK_WAIT_TIMEOUT setting.")
    return jobs.JobError(STATEMENT_TIMEOUT, f"{doing} stopped: {text}. The timeout is the "
                         "STRONGROOM_PG_STATEMENT_TIMEOUT setting.")


def skipped_warning(survey) -> str:
    return f"Database '{survey.name}' was not backed up: {survey.skip_reason}."


def source_id(instance, item: str) -> str:
    return f"bi:{instance.id}:pg:{item}"


class PostgresDriver(Driver):
    datasource_type = datasource_types.POSTGRES_FLEX
    datastore = "VaultStore"

    def server(self, instance):
        from portal.inventory.models import PostgresServer

        return self.datasource_row(PostgresServer.objects, instance, "server")

    # -- the run -----------------------------------------------------------------------------
    def backup(self, instance, run: RunContext) -> BackupOutcome:
        from portal.inventory import postgres
        from vaults.storage import open_store

        server = self.server(instance)
        timeouts = postgres.tool_timeouts()
        # The job's sessions carry its id, so the statement watch finds them (and a person in pg_stat_activity).
        params = server.connection_params().with_application(f"strongroom-job-{run.job.pk}").with_timeouts(timeouts)
        try:
            with postgres.connect(params) as conn:
                server_num = int(conn.execute("SHOW server_version_num").fetchone()[0])
                server_version = conn.execute("SHOW server_version").fetchone()[0]
            survey = postgres.survey_databases(params, owned_only=server.only_owned_databases)
        except Exception as exc:  # psycopg errors: the server is down or refuses us
            raise jobs.JobError(CONNECT_FAILED, postgres.describe_error(exc, params)) from None
        local_major, local_text = local_major_version()
        if server_num // 10000 > local_major:
            raise jobs.JobError(VERSION_MISMATCH, version_mismatch_message(server_version, local_text))
        databases = [d for d in survey if d.skip_reason is None]
        skipped = [d for d in survey if d.skip_reason is not None]

        run.report(items_total=1 + len(databases), current_item="Dumping roles and tablespaces", force=True)
        outcome = BackupOutcome(manifests=[], details={
            "server_version": server_version, "pg_dump": local_text, "login": params.user,
            "databases": [d.name for d in databases],
            "skippedDatabases": [{"name": d.name, "reason": d.skip_reason} for d in skipped],
            "rolePasswords": "not backed up (--no-role-passwords)",
        })
        # Templates are PostgreSQL's own, on every server: recorded above, not worth a warning each time.
        outcome.warnings += [skipped_warning(d) for d in skipped if not d.is_template]
        tags = [f"instance:{instance.id}", f"job:{run.job.pk}"]
        # pg_dump's own lock-wait limit is the safety net; the watch usually fires first and names the holder.
        lock_wait_ms = timeouts.lock_wait_ms + max(1000, timeouts.lock_wait_ms // 10)
        with open_store(instance.vault) as store:
            items = [(GLOBALS_ITEM, [tool("pg_dumpall"), "--globals-only", "--no-role-passwords", "--no-password"], params)]
            items += [(f"{db.name}.dump", [tool("pg_dump"), "--format=custom", "--no-password",
                                           f"--lock-wait-timeout={lock_wait_ms}"], params.with_database(db.name))
                      for db in databases]
            for item, command, item_params in items:
                run.check_cancel()
                database = item_params.dbname if item != GLOBALS_ITEM else ""
                doing = f"Dumping the database '{database}'" if database else "Dumping the globals (roles, tablespaces)"
                watch = postgres.StatementWatch(item_params, timeouts)
                try:
                    with watch:
                        snap = self._dump_into(store, command, item, item_params, instance, run, tags)
                except DumpFailed as exc:
                    if "server version mismatch" in exc.stderr:
                        raise jobs.JobError(VERSION_MISMATCH, version_mismatch_message(server_version, local_text)) from None
                    timed_out = timeout_error(watch, exc, doing)
                    if timed_out is not None:
                        raise timed_out from None
                    if database and _dropped_meanwhile(params, database):
                        outcome.warnings.append(f"The database '{database}' was dropped during the backup; it is not in this recovery point.")
                        continue
                    if database and "permission denied" in exc.stderr:  # an object the survey could not see
                        reason = next((line for line in exc.stderr.splitlines() if "permission denied" in line), exc.stderr)
                        outcome.warnings.append(f"Database '{database}' was not backed up: the login '{params.user}' "
                                                f"may not read all of it ({reason.strip()}).")
                        outcome.details["skippedDatabases"].append({"name": database, "reason": reason.strip()})
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
                    if item == GLOBALS_ITEM and self.server(instance).only_owned_databases:
                        reader = io.BytesIO(own_roles_only(reader.read(), params.user))  # a few kB
                    return store.backup_stream(reader, name=item, source_id=source_id(instance, item),
                                               tags=tags + [f"item:{item}"], progress=run.engine_progress(item),
                                               cancel=run.cancel, retain_until=run.retain_until,
                                               retention_mode=run.retention_mode)
                except Exception:
                    run.progress.raise_interrupt()  # stopped for a cancel or a stall: say that
                    raise
                finally:
                    proc.stdout.close()


def _dropped_meanwhile(params, database: str, *, checks: int = 5, interval: float = 0.3) -> bool:
    """Whether ``database`` was dropped while it was dumped. DROP DATABASE ... WITH (FORCE) ends the
    dump's session before the drop commits, so the database may still be listed for a moment after
    pg_dump failed: look again briefly before calling the failure a failed dump."""
    import time

    from portal.inventory import postgres

    for attempt in range(checks):
        if not postgres.database_exists(params, database):
            return True
        if attempt < checks - 1:
            time.sleep(interval)
    return False
