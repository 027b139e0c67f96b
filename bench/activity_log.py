#!/usr/bin/env python3
"""Benchmark (not a test): the activity log's hash chain on PostgreSQL (issue 18).

    .venv/bin/python bench/activity_log.py [--appends 2000] [--writers 4] [--rows 100000] [--runs 3]

1. A throwaway database on the PostgreSQL server of BENCH_DATABASE_URL (default
   postgres://postgres@127.0.0.1:5432/postgres) is created and migrated; Django runs with DEBUG off.
2. Appending: ``--appends`` calls of `security.audit.record`, each its own transaction, one after the other
   (entries/s), then the same number shared by ``--writers`` processes appending at once (each entry is
   sealed after its commit, the sealers taking the chain's head in turn); the chain is then walked to prove
   it unbroken.
3. Checking: the log is filled up to ``--rows`` entries (a valid chain, written in bulk), and
   `security.chain.walk` reads and checks it all, ``--runs`` times (median, entries/s).

The database is dropped at the end.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
OPERATION = "Strongroom.Bench/things/write"


def _environment(database_url: str, tmp: str) -> None:
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "portal.settings", "DATABASE_URL": database_url, "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(48), "STRONGROOM_MASTER_KEY": secrets.token_hex(32),
        "STRONGROOM_VAR_DIR": tmp, "STRONGROOM_DATA_ROOT": os.path.join(tmp, "data"), "ALLOWED_HOSTS": "testserver",
        "LOG_LEVEL": "WARNING", "CELERY_BROKER_URL": "filesystem://",
    })


def _admin_sql(admin_url: str, statement: str) -> None:
    import dj_database_url
    import psycopg

    cfg = dj_database_url.parse(admin_url)
    with psycopg.connect(host=cfg["HOST"] or "127.0.0.1", port=cfg["PORT"] or 5432, user=cfg["USER"] or "postgres",
                         password=cfg["PASSWORD"] or None, dbname=cfg["NAME"] or "postgres", autocommit=True) as conn:
        conn.execute(statement)


def _append(principal_pk: str, count: int, start=None) -> None:
    from django.db import connections

    from security.audit import record
    from security.models import Principal

    principal = Principal.objects.get(pk=principal_pk)
    if start is not None:
        start.wait(60)
    for i in range(count):
        record(principal, OPERATION, "/subscriptions/bench/resourceGroups/rg", status="Succeeded",
               details={"i": i, "name": "bench"})
    connections.close_all()


def bench_appends(count: int, writers: int) -> None:
    from django.db import connections

    from security import chain
    from security.models import Principal

    principal = Principal.objects.create(kind=Principal.Kind.USER, display_name="Bench User")
    _append(str(principal.pk), 50)  # warm up
    started = time.perf_counter()
    _append(str(principal.pk), count)
    elapsed = time.perf_counter() - started
    print(f"append, one writer:   {count} record() in {elapsed:.2f} s: {count / elapsed:,.0f} entries/s "
          f"({elapsed / count * 1000:.2f} ms each)")
    connections.close_all()
    context = multiprocessing.get_context("fork")
    start = context.Event()
    share = count // writers
    processes = [context.Process(target=_append, args=(str(principal.pk), share, start)) for _ in range(writers)]
    for process in processes:
        process.start()
    started = time.perf_counter()
    start.set()
    for process in processes:
        process.join()
    elapsed = time.perf_counter() - started
    assert all(p.exitcode == 0 for p in processes), [p.exitcode for p in processes]
    print(f"append, {writers} writers:    {share * writers} record() in {elapsed:.2f} s: "
          f"{share * writers / elapsed:,.0f} entries/s")
    walked = chain.walk()
    assert walked.clean, walked.first_break
    print(f"chain after appending: {walked.entries} entries, unbroken")


def fill(rows: int) -> None:
    """Bring the log to ``rows`` entries: a valid chain written in bulk (as the migration chains one)."""
    from django.db import transaction
    from django.utils import timezone

    from security import chain
    from security.models import ActivityLogEntry, ActivityLogHead

    head = ActivityLogHead.objects.get()
    sequence, previous = head.sequence, head.entry_hash
    key = chain._key()
    now = timezone.now()
    batch = []
    while sequence < rows:
        sequence += 1
        values = {"uid": uuid.uuid4(), "timestamp": now, "recorded_at": now, "principal_ref": str(uuid.uuid4()),
                  "principal_name": "Bench User", "actor_ref": "", "actor_name": "", "caller": "Bench User",
                  "operation": OPERATION, "operation_name": "Write things",
                  "scope": f"/subscriptions/bench/resourceGroups/rg-{sequence % 50}", "status": "Succeeded",
                  "sub_status": "", "level": "Informational", "correlation_id": uuid.uuid4(), "message": "",
                  "details": {"i": sequence, "name": "bench", "tags": {"env": "bench"}}}
        mac = chain.content_mac(values, key)
        digest = chain.link_hash(sequence, previous, mac, key)
        batch.append(ActivityLogEntry(sequence=sequence, previous_hash=previous, entry_hash=digest, content_mac=mac,
                                      **values))
        previous = digest
        if len(batch) == 5000 or sequence == rows:
            with transaction.atomic():
                ActivityLogEntry.objects.bulk_create(batch)
                ActivityLogHead.objects.filter(pk=1).update(sequence=sequence, entry_hash=previous)
            batch = []


def bench_walk(rows: int, runs: int) -> None:
    from django.db import connection

    from security import chain

    fill(rows)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE security_activitylogentry")
    times = []
    for _ in range(runs):
        walked = chain.walk()
        assert walked.clean, walked.first_break
        times.append(walked.seconds)
    median = statistics.median(times)
    print(f"verify: {walked.entries:,} entries in {median:.2f} s (median of {runs}; "
          f"{', '.join(f'{t:.2f}' for t in times)}): {walked.entries / median:,.0f} entries/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    admin_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    name = f"sr_bench_log_{secrets.token_hex(4)}"
    base = admin_url.rsplit("/", 1)[0]
    _admin_sql(admin_url, f'CREATE DATABASE "{name}"')
    try:
        with tempfile.TemporaryDirectory() as tmp:
            _environment(f"{base}/{name}", tmp)
            import django
            from django.core.management import call_command

            django.setup()
            call_command("migrate", verbosity=0)
            bench_appends(args.appends, args.writers)
            bench_walk(args.rows, args.runs)
            from django.db import connections

            connections.close_all()
    finally:
        _admin_sql(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
