#!/usr/bin/env python3
"""Benchmark: the busy pages with 10k backup instances, 1M jobs and 100 vaults in PostgreSQL (not run in CI).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/sr_bench_overview \\
        .venv/bin/python bench/overview.py --instances 10000 --jobs 1000000 --vaults 100 [--runs 20] [--keep]
    DATABASE_URL=… .venv/bin/python bench/overview.py --reuse --measure-only [--keep]   # the same rows again

It creates the database named in DATABASE_URL (refusing one that already has tables unless --reuse),
migrates it, seeds the lab tenancy, one vault and one policy per datasource type through the
services (and --vaults - 1 more, which share half the instances), then loads the generated rows with
PostgreSQL's COPY: N backup instances (half of them in the measured vault)
(a mix of types and protection states) and M jobs spread over the last 100 days (so about a
hundredth of them fall in the last 24 hours the Jobs tile counts). After ANALYZE it requests each
page in-process through Django's test client, signed in as the backup admin persona, and prints the
median and 95th percentile server time (request in, response out: middleware, views, queries,
templates) and the number of queries per request. The target (issue 22): p95 under 100 ms each.

The database is dropped at the end unless --keep.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import random
import statistics
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.setdefault("STRONGROOM_MODE", "lab")
TARGET_MS = 100.0  # issue 22: p95 server time


def _db_name_and_admin_dsn():
    import dj_database_url

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit("Set DATABASE_URL to a PostgreSQL database for the benchmark (it is created and dropped).")
    cfg = dj_database_url.parse(url)
    admin = {"host": cfg["HOST"] or "127.0.0.1", "port": cfg["PORT"] or 5432, "user": cfg["USER"] or "postgres",
             "dbname": "postgres"}
    if cfg.get("PASSWORD"):
        admin["password"] = cfg["PASSWORD"]
    return cfg["NAME"], admin


def _create_database(name, admin, reuse):
    import psycopg
    from psycopg import sql

    with psycopg.connect(**admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and not reuse:
            sys.exit(f"The database {name} exists; drop it, or pass --reuse to load into it.")
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))


def _drop_database(name, admin):
    import psycopg
    from psycopg import sql

    from django.db import connections

    connections.close_all()
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# --- COPY ------------------------------------------------------------------------------------------


def _text(value) -> str:
    if value is None:
        return r"\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, (dict, list)):
        value = json.dumps(value)
    elif isinstance(value, dt.datetime):
        value = value.isoformat()
    value = str(value)
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def copy_rows(model, rows, *, batch: int = 50_000) -> int:
    """COPY ``rows`` (dicts by field name; missing fields take the model's defaults) into ``model``."""
    from django.db import connection

    fields = [f for f in model._meta.concrete_fields]
    defaults = {}
    for f in fields:
        if f.has_default():
            default = f.get_default()
            defaults[f.name] = None if callable(f.default) and f.primary_key else default
        elif f.null:
            defaults[f.name] = None
        else:
            defaults[f.name] = ""
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    table = connection.ops.quote_name(model._meta.db_table)
    total, buf = 0, io.StringIO()

    def flush():
        nonlocal buf
        raw = connection.connection
        with raw.cursor() as cur:
            with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                copy.write(buf.getvalue())
        buf = io.StringIO()

    connection.ensure_connection()
    for n, row in enumerate(rows, start=1):
        buf.write("\t".join(_text(row.get(f.name, defaults[f.name])) for f in fields))
        buf.write("\n")
        total = n
        if n % batch == 0:
            flush()
    flush()
    return total


# --- data ------------------------------------------------------------------------------------------


def _other_vaults(lab, n_vaults: int, policy: dict):
    """The other vaults (through the service) and their policies (copies of the first vault's rows): the
    measured vault keeps half the instances, the rest are spread over the others."""
    from protection.models import BackupPolicy
    from vaults import services as vault_services

    others = [vault_services.create_vault(lab.trainer, name=f"bv-bench-{n:03d}", region=lab.region,
                                          resource_group=lab.lab_group) for n in range(1, n_vaults)]
    other_policy = {}
    for v in others:
        for k, p in policy.items():
            other_policy[(v.pk, k)] = BackupPolicy.objects.create(vault=v, name=p.name, datasource_type=k,
                                                                  policy_rules=p.policy_rules)
    return others, other_policy


def seed(n_instances: int, n_jobs: int, n_vaults: int = 1, seed_value: int = 8):
    from django.db import connection

    from portal.lab import seed_tenancy
    from protection import datasource_types
    from protection.models import BackupInstance, Job, JobCategory, JobOperation, JobStatus, ProtectionState
    from protection.policies import services as policies
    from security import clock
    from vaults import services as vault_services

    rng = random.Random(seed_value)
    lab = seed_tenancy()
    vault = vault_services.create_vault(lab.trainer, name="bv-bench", region=lab.region, resource_group=lab.lab_group)
    kinds = [datasource_types.ADLS, datasource_types.ELASTIC_SAN, datasource_types.POSTGRES_FLEX]
    policy = {k: policies.create_policy(lab.trainer, vault=vault, name=f"bench-{datasource_types.get(k).short}",
                                        datasource_type=k, spec=policies.default_spec(k)) for k in kinds}
    others, other_policy = _other_vaults(lab, n_vaults, policy)
    now = clock.now()
    states = [ProtectionState.CONFIGURED] * 90 + [ProtectionState.BACKUPS_SUSPENDED] * 4 + [ProtectionState.STOPPED] * 4 \
        + [ProtectionState.CONFIGURING_FAILED] * 2
    sub = lab.lab_group.resource_id
    instances = []
    t0 = time.monotonic()

    def instance_rows():
        for i in range(n_instances):
            kind = kinds[i % 3]
            in_vault = vault if not others or i % 2 == 0 else others[(i // 2) % len(others)]
            pk = uuid.UUID(int=rng.getrandbits(128), version=4)
            name = f"bi-{i:06d}"
            ds_id = {
                datasource_types.ADLS: f"{sub}/providers/Microsoft.Storage/storageAccounts/sabench{i:06d}",
                datasource_types.ELASTIC_SAN: f"{sub}/providers/Microsoft.ElasticSan/elasticSans/esan-bench/volumeGroups/vg/volumes/vol{i:06d}",
                datasource_types.POSTGRES_FLEX: f"{sub}/providers/Microsoft.DBforPostgreSQL/flexibleServers/pg-bench-{i:06d}",
            }[kind]
            state = rng.choice(states)
            instances.append((pk, name, kind, in_vault.pk))
            yield {"id": pk, "vault": in_vault.pk, "name": name, "datasource_type": kind,
                   "datasource_resource_id": ds_id, "datasource_name": ds_id.rsplit("/", 1)[-1], "datasource_location": "eastus",
                   "policy": policy[kind].pk if in_vault is vault else other_policy[(in_vault.pk, kind)].pk, "protection_state": state, "all_containers": kind == datasource_types.ADLS,
                   "next_backup_at": now + dt.timedelta(minutes=rng.randrange(1, 1440)) if state == ProtectionState.CONFIGURED else None,
                   "resource_id": f"{in_vault.resource_id}/backupInstances/{name}", "created_at": now, "updated_at": now,
                   "snapshot_resource_group_id": sub if kind == datasource_types.ELASTIC_SAN else ""}

    copy_rows(BackupInstance, instance_rows())
    loaded_instances = time.monotonic() - t0
    ops = [JobOperation.BACKUP] * 80 + [JobOperation.REPLICATION] * 15 + [JobOperation.RETENTION] * 3 + [JobOperation.RESTORE] * 2
    statuses = [JobStatus.COMPLETED] * 90 + [JobStatus.FAILED] * 5 + [JobStatus.COMPLETED_WITH_WARNINGS] * 3 + \
        [JobStatus.CANCELLED] * 2
    horizon = 100 * 86400

    running_backup = set()  # an instance has at most one backup in progress (one_active_backup_per_instance)

    def job_rows():
        for _ in range(n_jobs):
            pk_i, name, kind, vault_pk = instances[rng.randrange(len(instances))]
            op = rng.choice(ops)
            start = now - dt.timedelta(seconds=rng.randrange(horizon))
            status = rng.choice(statuses) if start < now - dt.timedelta(hours=2) else JobStatus.IN_PROGRESS
            if status == JobStatus.IN_PROGRESS and op == JobOperation.BACKUP:
                if pk_i in running_backup:
                    status = JobStatus.COMPLETED
                running_backup.add(pk_i)
            yield {"id": uuid.UUID(int=rng.getrandbits(128), version=4), "vault": vault_pk, "instance": pk_i,
                   "instance_name": name, "datasource_type": kind, "datasource_name": name.replace("bi-", "ds-"),
                   "operation": op, "category": JobCategory.BACKUP if op != JobOperation.RESTORE else JobCategory.RESTORE,
                   "status": status, "initiated_by_name": "Schedule", "start_time": start, "real_start_time": start,
                   "end_time": None if status == JobStatus.IN_PROGRESS else start + dt.timedelta(seconds=rng.randrange(5, 900)),
                   "bytes_done": rng.randrange(0, 10**9), "items_done": rng.randrange(0, 10**4),
                   "parameters": {}, "extended_info": {}}

    t1 = time.monotonic()
    copy_rows(Job, job_rows())
    loaded_jobs = time.monotonic() - t1
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    return lab, vault, loaded_instances, loaded_jobs


def _seeded(args):
    """The lab and the measured vault of a database an earlier run seeded (--measure-only)."""
    from portal.lab import seed_tenancy
    from protection.models import BackupInstance
    from vaults.models import BackupVault

    args.instances, args.jobs = BackupInstance.objects.count(), _job_estimate()
    return seed_tenancy(), BackupVault.objects.get(name="bv-bench")


def _vault_count() -> int:
    from vaults.models import BackupVault

    return BackupVault.objects.count()


def _job_estimate() -> int:
    from django.db import connection

    with connection.cursor() as cur:  # the planner's estimate: exact enough for a header, no scan
        cur.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'protection_job'")
        return cur.fetchone()[0]


# --- measuring -------------------------------------------------------------------------------------


def measure(client, url, runs):
    from django.db import connection, reset_queries

    times, queries = [], []
    client.get(url)  # warm up (template compile, caches)
    for _ in range(runs):
        reset_queries()
        t0 = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - t0) * 1000)
        queries.append(len(connection.queries))
        if response.status_code not in (200, 286):
            raise SystemExit(f"{url} answered {response.status_code}")
    times.sort()
    return {"median_ms": statistics.median(times), "p95_ms": times[max(0, int(len(times) * 0.95) - 1)],
            "queries": max(queries)}


def measure_api(lab, vault, runs) -> dict:
    """The API's list calls (issue 20) under the same budget: first pages, and a page deep in the list
    reached by its nextLink (keyset, so it should cost what the first does)."""
    from django.test import Client

    from portal.api import API_VERSION, tokens

    token, _ = tokens.issue(lab.personas["backup-admin"].principal)
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    base = vault.resource_id
    group = vault.resource_group.resource_id
    v = f"api-version={API_VERSION}"

    def next_link_after(url, pages):
        from urllib.parse import urlsplit

        for _ in range(pages):
            link = urlsplit(api.get(url).json()["nextLink"])
            url = f"{link.path}?{link.query}"
        return url

    calls = [
        ("API: vaults in the resource group", f"{group}/providers/Microsoft.DataProtection/backupVaults?{v}"),
        ("API: backup instances, page 1", f"{base}/backupInstances?{v}"),
        ("API: backup jobs, page 1", f"{base}/backupJobs?{v}"),
    ]
    calls += [
        ("API: backup instances, page 20", next_link_after(calls[1][1], 19)),
        ("API: backup jobs, page 50", next_link_after(calls[2][1], 49)),
    ]
    results = {}
    for label, url in calls:
        r = measure(api, url, runs)
        results[label] = {"url": url, **r}
        ok = "ok" if r["p95_ms"] < TARGET_MS else "SLOW"
        print(f"{label:36} {r['median_ms']:7.1f}ms {r['p95_ms']:7.1f}ms {r['queries']:8d}  {ok}")
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--vaults", type=int, default=100, help="vaults; the measured one holds half the instances")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true", help="load into an existing (migrated) database")
    parser.add_argument("--out", help="write the figures as JSON here")
    parser.add_argument("--measure-only", action="store_true",
                        help="with --reuse: migrate and measure a database seeded by an earlier --keep run")
    args = parser.parse_args()

    name, admin = _db_name_and_admin_dsn()
    _create_database(name, admin, args.reuse)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment

    settings.DEBUG = True  # count queries
    settings.ALLOWED_HOSTS = ["*"]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    import tempfile

    settings.STRONGROOM_DATA_ROOT = tempfile.mkdtemp(prefix="sr-bench-")
    try:
        call_command("migrate", verbosity=0)
        if args.measure_only:
            lab, vault = _seeded(args)
        else:
            print(f"Loading {args.instances:,} instances and {args.jobs:,} jobs into {name} with COPY …", flush=True)
            lab, vault, t_inst, t_jobs = seed(args.instances, args.jobs, args.vaults)
            print(f"  instances {t_inst:.1f} s, jobs {t_jobs:.1f} s", flush=True)
        setup_test_environment()
        client = Client()
        client.force_login(lab.personas["backup-admin"].principal.user)
        from protection.models import Job
        from protection.backups import services as backups
        from security import clock

        recent = Job.objects.filter(vault=vault, start_time__gte=clock.now() - dt.timedelta(hours=24)).count()
        pages = [
            ("Vault overview (page)", f"/vaults/{vault.pk}/"),
            ("Jobs tile (last 24 h)", f"/backup/vaults/{vault.pk}/tiles/jobs/"),
            ("Backup instances tile", f"/backup/vaults/{vault.pk}/tiles/instances/"),
            ("Jobs list (all vaults, 24 h)", "/backup/jobs/"),
            ("Jobs list (7 days, Failed)", "/backup/jobs/?range=7d&status=Failed"),
            ("Jobs list (all time, page 3)", "/backup/jobs/?range=all&page=3"),
            ("Vault's Backup jobs blade", f"/backup/vaults/{vault.pk}/jobs/"),
            ("Backup instances list", "/backup/instances/"),
            ("Vault's Backup instances blade", f"/backup/vaults/{vault.pk}/instances/"),
        ]
        results = {}
        print(f"\n{args.instances:,} backup instances, {args.jobs:,} jobs ({recent:,} in the last 24 hours), "
              f"{_vault_count()} vaults (the measured one holds half the instances); "
              f"{args.runs} requests each, backup admin persona\n")
        print(f"{'page':36} {'median':>9} {'p95':>9} {'queries':>8}  target < {TARGET_MS:.0f} ms")
        for label, url in pages:
            r = measure(client, url, args.runs)
            results[label] = {"url": url, **r}
            ok = "ok" if r["p95_ms"] < TARGET_MS else "SLOW"
            print(f"{label:36} {r['median_ms']:7.1f}ms {r['p95_ms']:7.1f}ms {r['queries']:8d}  {ok}")
        results.update(measure_api(lab, vault, args.runs))
        t0 = time.perf_counter()
        report = backups.dispatch_due_backups(now=clock.now() - dt.timedelta(days=1))
        due_ms = (time.perf_counter() - t0) * 1000
        print(f"{'Dispatcher: the due query (none due)':36} {due_ms:7.1f}ms {'':>9} {1:8d}")
        results["dispatcher_no_due_ms"] = due_ms
        assert not report.enqueued
        if args.out:
            os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
            with open(args.out, "w") as f:
                json.dump({"instances": args.instances, "jobs": args.jobs, "recent_jobs": recent, "pages": results}, f, indent=1)
    finally:
        if not args.keep:
            _drop_database(name, admin)


if __name__ == "__main__":
    main()
