#!/usr/bin/env python
"""Fault drills anyone can re-run (`make drills`; not part of CI — a small version is
tests/drills/test_worker_kill_drill.py).

Everything runs on servers of the drills' own, started here and removed afterwards: a redis-server
and a PostgreSQL cluster (initdb into a temporary folder, pg_ctl), each on a free port on 127.0.0.1 —
the shared PostgreSQL and Redis are never touched, let alone restarted. Workers and beat are real,
separate Celery processes (two workers of one process each, plus beat: the reconciler runs every
15 s as in production), kept alive by a small supervisor here, as `make run` or systemd would.

Drills (each prints one row):

  kill       kill -9 of the worker running a backup, once the job shows progress (×--kills)
  broker     Redis restarted right after 50 backups were queued
  database   PostgreSQL restarted while a backup runs
  disk       the vault's storage full while a backup runs, then space freed and backed up again
  bitflip    one byte flipped in a pack (in a chunk, then in the pack's trailer): Verify must say Damaged
  concurrent 8 simultaneous "Backup now" on one instance: exactly one job

Columns: runs; lost (a requested backup with neither a recovery point nor a readable failure, a
damage Verify missed, or data gone); stuck (not ended 2 minutes after the fault was over);
half points (store snapshots no recovery point owns, or recovery points whose data is not in the
store); recovery (fault → job ended, median / max); worker deaths and workers left dead;
unreadable failures (a failed job without an error code, or with InternalError); store verify.

    .venv/bin/python scripts/drills.py                 # all, 20 kills
    .venv/bin/python scripts/drills.py --only kill --kills 3
    .venv/bin/python scripts/drills.py --keep          # keep the temporary folder (logs) afterwards
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MIB = 1024 * 1024
STUCK_AFTER = 120  # seconds after the fault ended
DRILLS = ("kill", "broker", "database", "disk", "bitflip", "concurrent")


def say(text: str) -> None:
    print(f"[drills {time.strftime('%H:%M:%S')}] {text}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.3).close()
        return True
    except OSError:
        return False


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"Timed out after {timeout:.0f} s waiting for {what}.")


# --- our own servers ---------------------------------------------------------------------------------


class OwnRedis:
    """A redis-server of the drills' own; it saves on shutdown and loads on start, like a packaged one."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True)
        self.port = free_port()
        self.proc = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or sys.exit("redis-server is not installed (apt-get install redis-server).")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder), "--save", "3600 1",
             "--appendonly", "no", "--logfile", str(self.folder / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_until(lambda: answers(self.port), 20, "redis-server to answer")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: Redis saves, then exits
            self.proc.wait(30)

    def restart(self, down_for: float = 2.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()


class OwnPostgres:
    """A PostgreSQL cluster of the drills' own (initdb into a temporary folder; run as the postgres
    user when we are root, since PostgreSQL refuses to run as root)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()
        self.as_user = []
        self.bindir = self._bindir()

    @staticmethod
    def _bindir() -> Path:
        initdb = shutil.which("initdb")
        if initdb:
            return Path(initdb).resolve().parent
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not versions:
            sys.exit("PostgreSQL's initdb is not installed (apt-get install postgresql).")
        return versions[-1].parent

    def _run(self, *args, check=True):
        return subprocess.run([*self.as_user, *args], check=check, capture_output=True, text=True)

    def init(self) -> None:
        self.folder.mkdir(parents=True)
        if os.geteuid() == 0:
            import pwd

            user = pwd.getpwnam("postgres")
            os.chown(self.folder, user.pw_uid, user.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync")

    def _ctl(self, *args, check=True):
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} -c fsync=off -c max_connections=200"
        return self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "postgres.log"),
                         "-o", opts, "-w", "-t", "60", *args, check=check)

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        self._ctl("stop", "-m", "fast", check=False)

    def restart(self) -> None:
        self._ctl("restart", "-m", "fast")

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        self._run(str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)


# --- workers and beat, supervised ------------------------------------------------------------------


@dataclass
class Managed:
    name: str
    argv: list
    log: Path
    proc: subprocess.Popen | None = None
    deaths: int = 0
    restarts: int = 0
    death_log: list = field(default_factory=list)


class Fleet:
    """Two Celery workers (one process each) and beat, restarted 1 s after they exit (like run.sh)."""

    def __init__(self, env: dict, logs: Path, workers: int = 2):
        self.env, self.logs = env, logs
        py = sys.executable
        self.members = [
            Managed(f"worker{i}", [py, "-m", "celery", "-A", "portal", "worker", "-c", "1", "-n", f"drill{i}@%h",
                                   "-l", "INFO", "--without-gossip", "--without-mingle"], logs / f"worker{i}.log")
            for i in range(1, workers + 1)
        ] + [Managed("beat", [py, "-m", "celery", "-A", "portal", "beat", "-l", "INFO", "--schedule",
                              str(logs / "celerybeat-schedule")], logs / "beat.log")]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._supervise, daemon=True)

    def _spawn(self, m: Managed) -> None:
        m.proc = subprocess.Popen(m.argv, cwd=ROOT, env=self.env, stdout=m.log.open("ab"), stderr=subprocess.STDOUT,
                                  start_new_session=True)

    def start(self) -> None:
        for m in self.members:
            self._spawn(m)
        self._thread.start()
        wait_until(lambda: all("ready." in m.log.read_text(errors="replace") for m in self.workers), 120,
                   "the workers to be ready")

    @property
    def workers(self):
        return [m for m in self.members if m.name.startswith("worker")]

    def _supervise(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                for m in self.members:
                    if m.proc is not None and m.proc.poll() is not None:
                        m.deaths += 1
                        m.death_log.append((time.monotonic(), m.proc.returncode))
                        m.proc = None
                        threading.Timer(1.0, self._respawn, args=(m,)).start()
            time.sleep(0.1)

    def _respawn(self, m: Managed) -> None:
        with self._lock:
            if not self._stop.is_set() and m.proc is None:
                self._spawn(m)
                m.restarts += 1

    def deaths(self) -> int:
        return sum(m.deaths for m in self.members)

    def left_dead(self) -> int:
        time.sleep(1.5)  # give the supervisor its restart delay
        return sum(1 for m in self.members if m.proc is None or m.proc.poll() is not None)

    def kill_holder(self, worker_field: str) -> str:
        """SIGKILL the whole process group of the worker whose process runs the job ("host:pid")."""
        pid = int(worker_field.rsplit(":", 1)[1])
        pgid = os.getpgid(pid)
        with self._lock:
            for m in self.workers:
                if m.proc is not None and m.proc.pid == pgid:
                    os.killpg(pgid, signal.SIGKILL)
                    return m.name
        os.killpg(pgid, signal.SIGKILL)
        return f"pgid {pgid}"

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        with self._lock:
            for m in self.members:
                if m.proc is not None and m.proc.poll() is None:
                    os.killpg(m.proc.pid, signal.SIGTERM)
            for m in self.members:
                if m.proc is not None:
                    try:
                        m.proc.wait(30)
                    except subprocess.TimeoutExpired:
                        os.killpg(m.proc.pid, signal.SIGKILL)


# --- results -----------------------------------------------------------------------------------------


@dataclass
class Row:
    drill: str
    runs: int = 0
    lost: int = 0
    stuck: int = 0
    half: int = 0
    recovery: list = field(default_factory=list)
    deaths: int = 0
    left_dead: int = 0
    unreadable: int = 0
    store_ok: bool | None = None
    notes: list = field(default_factory=list)

    def recovery_text(self) -> str:
        if not self.recovery:
            return "-"
        return f"{statistics.median(self.recovery):.0f} / {max(self.recovery):.0f} s"


def print_table(rows: list[Row]) -> None:
    head = ["drill", "runs", "lost", "stuck", "half points", "recovery (median / max)", "worker deaths",
            "left dead", "unreadable failures", "store verifies"]
    body = [[r.drill, str(r.runs), str(r.lost), str(r.stuck), str(r.half), r.recovery_text(), str(r.deaths),
             str(r.left_dead), str(r.unreadable), {True: "yes", False: "NO", None: "-"}[r.store_ok]] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    print()
    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for cells in body:
        print(line(cells))
    print()
    for r in rows:
        for note in r.notes:
            print(f"- {r.drill}: {note}")
    print(flush=True)


# --- the drills (run in this process, with Django set up against our own servers) -------------------


class Lab:
    """What the drills back up: a vault, an ADLS policy and instances over storage accounts."""

    def __init__(self):
        from portal.lab import seed_tenancy
        from protection import datasource_types
        from protection.policies import services as policy_services
        from vaults import services as vault_services

        self.lab = seed_tenancy()
        self.trainer = self.lab.trainer
        self.vault = vault_services.create_vault(self.trainer, name="bv-drills", region=self.lab.region,
                                                 resource_group=self.lab.lab_group)
        spec = policy_services.default_spec(datasource_types.ADLS)
        self.policy = policy_services.create_policy(self.trainer, vault=self.vault, name="drills-daily",
                                                    datasource_type=datasource_types.ADLS, spec=spec)
        self.rng = random.Random(14)
        self._n = 0
        self.instances = []  # every instance made, in order (a drill checks its own)

    def instance(self, data_mib: int = 0, vault=None, policy=None):
        """A new storage account with one container ("data") and a backup instance protecting it."""
        from portal.inventory import services as inv
        from protection import datasource_types
        from protection import readiness
        from protection.instances import services as instance_services
        from protection.jobs import runner as jobs
        from protection.models import Job

        self._n += 1
        vault = vault or self.vault
        account = inv.create_storage_account(self.trainer, resource_group=self.lab.lab_group,
                                             name=f"sadrill{self._n:03d}{os.getpid() % 1000:03d}", region=self.lab.region)
        container = inv.create_container(self.trainer, account, name="data")
        if data_mib:
            self.put(container, data_mib)
        ds = readiness.Datasource(datasource_types.ADLS, account.resource_id, account.name)
        instance_services.assign_missing_roles(self.trainer, vault=vault, datasources=[ds], level=readiness.SCOPE_RESOURCE)
        [instance] = instance_services.configure_protection(
            self.trainer, vault=vault, policy=policy or self.policy,
            selections=[instance_services.DatasourceSelection(account.resource_id, f"bi-drill-{self._n}",
                                                              all_containers=True)])
        configure = Job.objects.get(instance=instance)
        jobs.run(configure.pk)  # here, or by a worker that took it first: wait for its end either way
        wait_until(lambda: Job.objects.filter(pk=configure.pk, status__in=ENDED).exists(), 60,
                   f"the ConfigureProtection job of {instance.name}")
        instance.refresh_from_db()
        instance.drill_container = container
        self.instances.append(instance)
        return instance

    def put(self, container, mib: int, files: int | None = None) -> None:
        """``mib`` MiB of new random data (nothing the store has seen), in files of 8 MiB."""
        from portal.inventory import services as inv

        files = files or max(1, mib // 8)
        size = mib * MIB // files
        uploads = [inv.Upload(f"drill/{self._n}-{time.monotonic_ns()}-{i}.bin", io.BytesIO(self.rng.randbytes(size)))
                   for i in range(files)]
        inv.upload_blobs(self.trainer, container, uploads)


def _db_retry(fn, *args, **kwargs):
    """Run a query, reconnecting while the database restarts."""
    from django.db import OperationalError, InterfaceError, connection

    for _ in range(600):
        try:
            return fn(*args, **kwargs)
        except (OperationalError, InterfaceError):
            connection.close()
            time.sleep(0.2)
    return fn(*args, **kwargs)


def job_state(job_id):
    from protection.models import Job

    return _db_retry(lambda: Job.objects.filter(pk=job_id).values(
        "status", "bytes_done", "worker", "error_code", "error_message", "attempts", "recovery_point_id").first())


ENDED = {"Completed", "CompletedWithWarnings", "Failed", "Cancelled"}


def wait_for_jobs(job_ids, fault_over_at: float, extra: float = 0.0) -> dict:
    """Wait until every job ended or STUCK_AFTER (+extra) seconds passed since the fault was over.
    Returns {job_id: (state, ended_at_monotonic or None)}."""
    pending = set(job_ids)
    result = {}
    deadline = fault_over_at + STUCK_AFTER + extra
    while pending and time.monotonic() < deadline:
        for job_id in list(pending):
            state = job_state(job_id)
            if state and state["status"] in ENDED:
                result[job_id] = (state, time.monotonic())
                pending.discard(job_id)
        time.sleep(0.25)
    for job_id in pending:
        result[job_id] = (job_state(job_id), None)
    return result


def judge_jobs(row: Row, outcomes: dict, fault_at: float) -> None:
    """Lost, stuck, unreadable and recovery time from the jobs' ends."""
    from protection.models import RecoveryPoint

    for job_id, (state, ended_at) in outcomes.items():
        if ended_at is None:
            row.stuck += 1
            row.notes.append(f"job {job_id} still {state['status']} (attempts {state['attempts']}) past the deadline")
            continue
        row.recovery.append(ended_at - fault_at)
        if state["status"] in ("Completed", "CompletedWithWarnings"):
            if not state["recovery_point_id"] or not RecoveryPoint.objects.filter(pk=state["recovery_point_id"]).exists():
                row.lost += 1
                row.notes.append(f"job {job_id} completed without a recovery point")
        elif state["status"] == "Failed":
            if not state["error_code"] or state["error_code"] == "InternalError" or not state["error_message"]:
                row.unreadable += 1
            row.notes.append(f"job {job_id} failed: {state['error_code']}: {state['error_message'][:160]}")
        else:
            row.notes.append(f"job {job_id} ended {state['status']}")


def check_store(row: Row, vault, instances) -> None:
    """Half points (both ways) of the drill's instances, and a full verify of the vault's store."""
    from protection.models import RecoveryPoint
    from vaults.storage import open_store

    owned = {}
    points = list(RecoveryPoint.objects.filter(instance__in=[i.pk for i in instances]).select_related("instance"))
    for point in points:
        owned.update({m["id"]: point.instance.name for m in (point.manifests or [])})
    prefixes = tuple(f"bi:{i.pk}:" for i in instances)
    with open_store(vault) as store:
        snapshots = {s.id for s in store.list_snapshots() if s.source_id.startswith(prefixes)}
        orphans = snapshots - set(owned)
        missing = set(owned) - snapshots
        report = store.verify()
    row.half += len(orphans) + len(missing)
    if orphans:
        row.notes.append(f"{len(orphans)} snapshot(s) in the store belong to no recovery point")
    if missing:
        row.notes.append(f"{len(missing)} recovery point snapshot(s) missing from the store "
                         f"(a recovery point whose data is gone: {', '.join(sorted({owned[m] for m in missing}))})")
    row.store_ok = report.ok if row.store_ok is None else (row.store_ok and report.ok)
    if not report.ok:
        row.notes.append(f"store verify: {'; '.join(report.errors[:3]) or report.damaged_items[:3]}")


def drill_kill(ctx, kills: int) -> Row:
    from protection.backups import services as backups

    first = len(ctx.lab.instances)
    row = ctx.row(f"kill -9 worker mid-backup ×{kills}")
    deaths_before = ctx.fleet.deaths()
    for i in range(kills):
        # A new instance each time (Azure allows 4 on-demand backups per instance per day), with data enough
        # that the backup is still reading when the kill lands.
        instance = ctx.lab.instance(data_mib=384)
        job = backups.backup_now(ctx.lab.trainer, instance, retention_rule="Default")
        try:
            state = wait_until(lambda: (s := job_state(job.pk)) and s["status"] == "InProgress" and s["bytes_done"] > 0
                               and s["worker"] and s, 120, "the backup to show progress", interval=0.02)
        except TimeoutError as exc:
            row.runs += 1
            row.stuck += 1
            row.notes.append(f"run {i + 1}: {exc}")
            continue
        killed_at = time.monotonic()
        who = ctx.fleet.kill_holder(state["worker"])
        row.runs += 1
        outcomes = wait_for_jobs([job.pk], killed_at)
        judge_jobs(row, outcomes, killed_at)
        say(f"  kill {i + 1}/{kills}: {who} killed at {state['bytes_done'] / MIB:.0f} MiB; job "
            f"{outcomes[job.pk][0]['status']} after {(outcomes[job.pk][1] or time.monotonic()) - killed_at:.0f} s")
    row.deaths = ctx.fleet.deaths() - deaths_before - kills  # the kills themselves do not count
    row.notes.append(f"{kills} kills; worker deaths other than the kills: {row.deaths}")
    row.left_dead = ctx.fleet.left_dead()
    check_store(row, ctx.lab.vault, ctx.lab.instances[first:])
    return row


def drill_broker(ctx, count: int = 50) -> Row:
    from protection.backups import services as backups

    first = len(ctx.lab.instances)
    row = ctx.row(f"broker restart, {count} queued")
    say(f"  creating {count} instances")
    instances = [ctx.lab.instance(data_mib=1) for _ in range(count)]
    deaths_before = ctx.fleet.deaths()
    job_ids = [backups.backup_now(ctx.lab.trainer, i, retention_rule="Default").pk for i in instances]
    fault_at = time.monotonic()
    ctx.redis.restart()
    over_at = time.monotonic()
    row.runs = count
    outcomes = wait_for_jobs(job_ids, over_at, extra=count * 2)
    judge_jobs(row, outcomes, fault_at)
    row.deaths = ctx.fleet.deaths() - deaths_before
    row.left_dead = ctx.fleet.left_dead()
    check_store(row, ctx.lab.vault, ctx.lab.instances[first:])
    return row


def drill_database(ctx, runs: int = 1) -> Row:
    from django.db import connection

    from protection.backups import services as backups

    first = len(ctx.lab.instances)
    row = ctx.row("database restart mid-backup")
    instance = ctx.lab.instance()
    deaths_before = ctx.fleet.deaths()
    for _ in range(runs):
        ctx.lab.put(instance.drill_container, 96)
        job = backups.backup_now(ctx.lab.trainer, instance, retention_rule="Default")
        wait_until(lambda: (s := job_state(job.pk)) and s["status"] == "InProgress" and s["bytes_done"] > 0, 120,
                   "the backup to show progress", interval=0.02)
        fault_at = time.monotonic()
        connection.close()
        ctx.postgres.restart()
        over_at = time.monotonic()
        row.runs += 1
        judge_jobs(row, wait_for_jobs([job.pk], over_at), fault_at)
    row.deaths = ctx.fleet.deaths() - deaths_before
    row.left_dead = ctx.fleet.left_dead()
    check_store(row, ctx.lab.vault, ctx.lab.instances[first:])
    return row


def drill_disk(ctx) -> Row:
    """The vault's store on a small filesystem of its own (tmpfs), filled up while a backup runs."""
    from protection.backups import services as backups
    from vaults import services as vault_services
    from vaults.storage import store_path

    first = len(ctx.lab.instances)
    row = ctx.row("full disk mid-backup")
    if os.geteuid() != 0:
        row.notes.append("skipped: mounting a small filesystem for the store needs root")
        return row
    vault = vault_services.create_vault(ctx.lab.trainer, name="bv-drills-disk", region=ctx.lab.lab.region,
                                        resource_group=ctx.lab.lab.lab_group)
    from protection import datasource_types
    from protection.policies import services as policy_services

    policy = policy_services.create_policy(ctx.lab.trainer, vault=vault, name="drills-disk",
                                           datasource_type=datasource_types.ADLS,
                                           spec=policy_services.default_spec(datasource_types.ADLS))
    instance = ctx.lab.instance(vault=vault, policy=policy)
    path = store_path(vault)
    aside = path.with_name(path.name + ".before-mount")
    path.rename(aside)
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160m,mode=0700", "tmpfs", str(path)], check=True)
    ctx.cleanups.append(lambda: subprocess.run(["umount", "-l", str(path)], check=False))
    shutil.copytree(aside, path, dirs_exist_ok=True)
    shutil.rmtree(aside)
    deaths_before = ctx.fleet.deaths()
    ctx.lab.put(instance.drill_container, 128)
    ballast = path / "ballast"
    job = backups.backup_now(ctx.lab.trainer, instance, retention_rule="Default")
    wait_until(lambda: (s := job_state(job.pk)) and s["status"] == "InProgress" and s["bytes_done"] > 0, 120,
               "the backup to show progress", interval=0.02)
    fault_at = time.monotonic()
    # Fill what is left but ~4 MiB: the backup runs out of space part way.
    free = shutil.disk_usage(path).free
    with open(ballast, "wb") as f:
        try:
            f.write(b"\0" * max(0, free - 4 * MIB))
        except OSError:
            pass
    row.runs += 1
    outcomes = wait_for_jobs([job.pk], fault_at)
    judge_jobs(row, outcomes, fault_at)
    state = outcomes[job.pk][0]
    row.notes.append(f"with the disk full the job ended {state['status']} "
                     f"{state['error_code']}: {(state['error_message'] or '')[:200]}")
    ballast.unlink()
    used = shutil.disk_usage(path).used
    row.notes.append(f"store uses {used / MIB:.0f} MiB of 160 MiB after the failed backup (before GC)")
    # Space is back: a smaller backup must work now.
    from portal.inventory import services as inv

    names = [b.name for b in inv.list_blobs(ctx.lab.trainer, instance.drill_container)]
    inv.delete_blobs(ctx.lab.trainer, instance.drill_container, names)
    ctx.lab.put(instance.drill_container, 16)
    again = backups.backup_now(ctx.lab.trainer, instance, retention_rule="Default")
    second = wait_for_jobs([again.pk], time.monotonic())
    state2 = second[again.pk][0]
    row.runs += 1
    judge_jobs(row, second, fault_at)
    row.notes.append(f"the next (16 MiB) backup once space was back: {state2['status']} {state2['error_code']}")
    row.deaths = ctx.fleet.deaths() - deaths_before
    row.left_dead = ctx.fleet.left_dead()
    check_store(row, vault, ctx.lab.instances[first:])
    return row


def drill_bitflip(ctx) -> Row:
    from protection.backups import services as backups
    from protection.models import Job, RecoveryPoint
    from protection.restores import services as restore_services
    from security.models import Alert
    from vaults.storage import open_store, store_path

    first = len(ctx.lab.instances)
    row = ctx.row("flipped byte in a pack")
    instance = ctx.lab.instance(data_mib=24)
    job = backups.backup_now(ctx.lab.trainer, instance, retention_rule="Default")
    outcome = wait_for_jobs([job.pk], time.monotonic())
    point = RecoveryPoint.objects.get(pk=outcome[job.pk][0]["recovery_point_id"])
    with open_store(ctx.lab.vault) as store:
        packs = sorted({loc for loc in _packs_of(store, point.manifest_id)})
    pack_file = next(p for p in (store_path(ctx.lab.vault) / "packs").rglob("*") if p.is_file() and p.name == packs[0].split("/")[-1])
    size = pack_file.stat().st_size
    for where, offset in (("a chunk", size // 3), ("the trailer", size - 2)):
        original = pack_file.read_bytes()
        flipped = bytearray(original)
        flipped[offset] ^= 0x01
        os.chmod(pack_file, 0o600)
        pack_file.write_bytes(bytes(flipped))
        alerts_before = Alert.objects.count()
        verify = restore_services.start_verify(ctx.lab.trainer, point)
        started = time.monotonic()
        result = wait_for_jobs([verify.pk], started)
        state = result[verify.pk][0]
        point.refresh_from_db()
        row.runs += 1
        if result[verify.pk][1] is None:
            row.stuck += 1
        else:
            row.recovery.append(result[verify.pk][1] - started)
        detected = point.health == RecoveryPoint.Health.DAMAGED and Alert.objects.count() > alerts_before
        if not detected:
            row.lost += 1
        row.notes.append(f"byte flipped in {where}: Verify {state['status']} {state['error_code']}, point "
                         f"{point.health}, alert {'raised' if Alert.objects.count() > alerts_before else 'NOT raised'}")
        pack_file.write_bytes(original)  # repair, so the store verifies again
        RecoveryPoint.objects.filter(pk=point.pk).update(health=RecoveryPoint.Health.NOT_VERIFIED)
    check_store(row, ctx.lab.vault, ctx.lab.instances[first:])
    return row


def _packs_of(store, snapshot_id):
    """Names of the packs holding a snapshot's chunks (through the store's index)."""
    seen = set()
    for rec in store.records(snapshot_id):
        for c in rec.get("c", ()):
            h = c[1] if len(c) == 3 else c[0]
            loc = store.index.locate(bytes.fromhex(h))
            if loc is not None:
                seen.add(loc[0])
    return seen


def drill_concurrent(ctx, clicks: int = 8) -> Row:
    from django.core.exceptions import ValidationError
    from django.db import connection

    from protection.backups import services as backups
    from protection.models import Job

    first = len(ctx.lab.instances)
    row = ctx.row(f'concurrent "Backup now" ×{clicks}')
    instance = ctx.lab.instance(data_mib=16)
    barrier = threading.Barrier(clicks)
    made, refused, errors = [], [], []

    def click():
        try:
            barrier.wait()
            made.append(backups.backup_now(ctx.lab.trainer, instance, retention_rule="Default").pk)
        except ValidationError as exc:
            refused.append("; ".join(exc.messages))
        except Exception as exc:  # noqa: BLE001 — reported in the table
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(clicks)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    row.runs = clicks
    jobs_now = Job.objects.filter(instance=instance, operation="Backup").count()
    if jobs_now != 1:
        row.notes.append(f"{jobs_now} backup jobs were created (expected exactly one)")
        row.lost += max(0, 1 - jobs_now)
    row.unreadable += len(errors)
    row.notes.append(f"{len(made)} job(s) created, {len(refused)} refused"
                     + (f" (e.g. \"{refused[0][:140]}\")" if refused else "") + (f"; errors: {errors[:2]}" if errors else ""))
    judge_jobs(row, wait_for_jobs(made, time.monotonic()), started)
    row.left_dead = ctx.fleet.left_dead()
    check_store(row, ctx.lab.vault, ctx.lab.instances[first:])
    return row


# --- main ----------------------------------------------------------------------------------------------


@dataclass
class Context:
    redis: OwnRedis
    postgres: OwnPostgres
    fleet: Fleet
    lab: Lab
    cleanups: list
    current: Row | None = None

    def row(self, name: str) -> Row:
        """The drill's row, kept here so that a drill that breaks off still reports what it saw."""
        self.current = Row(name)
        return self.current


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=DRILLS, help="run only this drill (repeatable)")
    parser.add_argument("--kills", type=int, default=20, help="kill -9 runs (default 20)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder with every log")
    args = parser.parse_args()
    # SIGTERM (or a second Ctrl-C) still stops our servers and workers: the finally below runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    chosen = args.only or list(DRILLS)

    base = Path(tempfile.mkdtemp(prefix="strongroom-drills-"))
    os.chmod(base, 0o755)
    say(f"working in {base}")
    redis = OwnRedis(base / "redis")
    postgres = OwnPostgres(base / "postgres")
    cleanups = []
    fleet = None
    try:
        redis.start()
        postgres.init()
        postgres.start()
        postgres.create_database("strongroom")
        say(f"own redis-server on :{redis.port}, own PostgreSQL on :{postgres.port}")
        env = {**os.environ,
               "DATABASE_URL": postgres.url("strongroom"), "CELERY_BROKER_URL": redis.url,
               "CELERY_TASK_DEFAULT_QUEUE": "strongroom-drills", "STRONGROOM_VAR_DIR": str(base / "var"),
               "STRONGROOM_DATA_ROOT": str(base / "data"), "DEBUG": "true", "STRONGROOM_LAB_MODE": "true",
               "LOG_LEVEL": "WARNING"}
        os.environ.update(env)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
        import django

        django.setup()
        from django.core.management import call_command

        say("migrating the drills' database")
        call_command("migrate", verbosity=0)
        logs = base / "logs"
        logs.mkdir()
        fleet = Fleet(env, logs)
        fleet.start()
        say("workers and beat are up")
        ctx = Context(redis, postgres, fleet, Lab(), cleanups)
        rows = []
        runners = {"kill": lambda: drill_kill(ctx, args.kills), "broker": lambda: drill_broker(ctx),
                   "database": lambda: drill_database(ctx), "disk": lambda: drill_disk(ctx),
                   "bitflip": lambda: drill_bitflip(ctx), "concurrent": lambda: drill_concurrent(ctx)}
        for name in DRILLS:
            if name not in chosen:
                continue
            say(f"drill: {name}")
            began = time.monotonic()
            ctx.current = None
            try:
                row = runners[name]()
            except Exception as exc:  # a drill that cannot finish is a finding, not a crash of the table
                import traceback

                traceback.print_exc()
                row = ctx.current or Row(name)
                row.notes.append(f"the drill broke off: {type(exc).__name__}: {exc}")
            row.notes.append(f"took {time.monotonic() - began:.0f} s")
            rows.append(row)
            print_table(rows)
        bad = any(r.lost or r.stuck or r.half or r.left_dead or r.unreadable or r.store_ok is False for r in rows)
        print("All targets met." if not bad else "Some targets were missed (see the rows and notes above).")
        return 1 if bad else 0
    finally:
        if fleet is not None:
            fleet.stop()
        for cleanup in reversed(cleanups):
            cleanup()
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001 — Django may not be set up
            pass
        postgres.stop()
        redis.stop()
        if args.keep:
            say(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
