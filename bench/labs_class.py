#!/usr/bin/env python3
"""Benchmark (not a test): a lab class on PostgreSQL, as issue 17 asks.

    .venv/bin/python bench/labs_class.py [--trainees 20] [--labs vault-basics,adls-backup] [--runs 10] [--profile]
    make bench-labs

1. A throwaway database on the PostgreSQL server of BENCH_DATABASE_URL (default
   postgres://postgres@127.0.0.1:5432/postgres) is created, migrated and seeded with the lab tenancy
   (portal.lab.seed_tenancy), with data under a temporary folder; Django runs with DEBUG off.
2. The trainer (a Lab Instructor) creates a class of ``--trainees`` with ``labs.classes.create_class``,
   timed: every account, sandbox (real data: blobs, an Elastic SAN volume, a PostgreSQL database), pair
   and lab run made before it returns (target: under 60 s for 20 trainees). ``--profile`` prints where
   the time goes (cProfile, cumulative).
3. The trainees get mid-lab (untimed): each solves 0, 1 or 2 steps of the first lab as themselves and
   every run is checked, so the matrix has done, current and failed steps and the feeds have entries.
4. The class page, as the instructor sees it, and seat 1's page of the first lab, as its trainee sees it,
   through the Django test client (middleware, the views, the templates, the database): median and p95
   server time of ``--runs`` requests, whole page and the htmx part each polls (target: under 300 ms),
   and their number of queries.

Everything made is dropped at the end: the database, the sandboxes' PostgreSQL logins and databases on
the lab cluster, the data folder.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import secrets
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
# The labs a class does by default: as many as can share a seat's one sandbox (a datasource is protected in one
# vault only, so create_class refuses two labs that protect the same one: ADLS, MUA and the drill all protect
# sbx<code>src).
DEFAULT_LABS = ("vault-basics", "elastic-san-backup", "mua-resource-guard")
CREATE_TARGET_S = 60.0
PAGE_TARGET_MS = 300.0


def _environment(database_url: str, tmp: str) -> None:
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "portal.settings", "DATABASE_URL": database_url, "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(48), "STRONGROOM_MASTER_KEY": secrets.token_hex(32),
        "STRONGROOM_VAR_DIR": tmp, "STRONGROOM_DATA_ROOT": os.path.join(tmp, "data"),
        "STRONGROOM_MODE": "lab", "ALLOWED_HOSTS": "testserver", "LOG_LEVEL": "WARNING", "CELERY_BROKER_URL": "filesystem://",
    })


def _server(admin_url: str):
    import dj_database_url

    cfg = dj_database_url.parse(admin_url)
    return {"host": cfg["HOST"] or "127.0.0.1", "port": cfg["PORT"] or 5432, "user": cfg["USER"] or "postgres",
            "password": cfg["PASSWORD"] or None, "dbname": cfg["NAME"] or "postgres"}


def _admin_sql(server: dict, statement: str) -> None:
    import psycopg

    with psycopg.connect(**server, autocommit=True) as conn:
        conn.execute(statement)


def _url(server: dict, name: str) -> str:
    auth = server["user"] + (f":{server['password']}" if server["password"] else "")
    return f"postgres://{auth}@{server['host']}:{server['port']}/{name}"


def _setup():
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from portal.lab import seed_tenancy

    return seed_tenancy()


def _create(instructor, trainees: int, labs: list[str], profile: bool):
    from labs import classes

    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    created = classes.create_class(instructor, name="Bench class", labs=labs, trainees=trainees)
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - started
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
        print(out.getvalue())
    return created, seconds


def _mid_lab(lab_class) -> dict:
    """Each trainee solves 0, 1 or 2 steps of the first lab (as themselves), then every run is checked."""
    from labs import catalogue, class_progress, services
    from labs.models import LabRun

    first = catalogue.get(lab_class.labs[0])
    solved = 0
    for seat in lab_class.seats.select_related("trainee"):
        run = services.active_run(seat.trainee, first.slug)
        for step in first.steps[: seat.number % 3]:
            step.solve(services.context_for(run, run_jobs_inline=True))
            services.check_run(run)
            solved += 1
    for run in LabRun.objects.filter(trainee__seat__lab_class=lab_class, active=True):
        services.check_run(run)
    states: dict = {}
    for row in class_progress.class_rows(lab_class):
        for progress in row.labs:
            for cell in progress.cells:
                states[cell.state] = states.get(cell.state, 0) + 1
    return {"solved": solved, "states": states}


def _page_times(lab_class, instructor, runs: int) -> dict:
    """The class page as the instructor sees it, and seat 1's page of the class's first lab as its trainee
    does (the part of it polled every 3 s is the most frequent request of a class), each whole and its htmx
    part: median and p95 server time, queries."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    teacher, trainee = Client(), Client()
    teacher.force_login(instructor.user)
    trainee.force_login(lab_class.seats.select_related("trainee__user").get(number=1).trainee.user)
    pages = (("class page", teacher, reverse("labs:class_page", args=[lab_class.slug])),
             ("lab page", trainee, reverse("labs:lab_page", args=[lab_class.labs[0]])))
    out = {}
    for name, client, path in pages:
        for label, headers in (("page", {}), ("htmx part", {"HTTP_HX_REQUEST": "true"})):
            for _ in range(2):  # warm-up: templates compiled, connections open
                assert client.get(path, **headers).status_code == 200
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                response = client.get(path, **headers)
                times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200
            with CaptureQueriesContext(connection) as queries:
                size = len(client.get(path, **headers).content)
            times.sort()
            out[f"{name} ({label})"] = {"median_ms": statistics.median(times), "max_ms": max(times),
                                        "p95_ms": times[max(0, int(len(times) * 0.95) - 1)],
                                        "queries": len(queries), "bytes": size}
    return out


def _cleanup_external() -> None:
    from django.db import connections

    from labs.models import Sandbox
    from labs.sandboxes import drop_pg_login

    for login in Sandbox.objects.exclude(pg_login="").values_list("pg_login", flat=True):
        try:
            drop_pg_login(login)
        except Exception as exc:  # noqa: BLE001 - report and go on dropping the others
            print(f"could not drop login {login}: {exc}", file=sys.stderr)
    connections.close_all()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trainees", type=int, default=20)
    parser.add_argument("--labs", default="", help="comma-separated lab slugs (default: DEFAULT_LABS offered here)")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--profile", action="store_true", help="profile the class creation (cProfile)")
    args = parser.parse_args()
    server = _server(os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    name = f"sr_bench_labs_{os.getpid()}"
    tmp = tempfile.mkdtemp(prefix="sr-bench-labs-")
    _admin_sql(server, f'CREATE DATABASE "{name}"')
    _environment(_url(server, name), tmp)
    django_ready = False
    try:
        lab = _setup()
        django_ready = True
        from labs import catalogue

        offered = {lab_.slug for lab_ in catalogue.available()}
        labs = [s for s in args.labs.split(",") if s] or [s for s in DEFAULT_LABS if s in offered]
        from django.conf import settings

        settings.STRONGROOM_LAB_CLASS_CAP = max(args.trainees, 30)
        print(f"PostgreSQL {server['host']}:{server['port']} database {name}; labs: {', '.join(labs)}")
        created, seconds = _create(lab.trainer, args.trainees, labs, args.profile)
        verdict = "ok" if seconds < CREATE_TARGET_S or args.trainees != 20 else "OVER TARGET"
        print(f"create_class: {args.trainees} trainees, {len(labs)} labs: {seconds:.1f} s "
              f"({seconds / args.trainees:.2f} s a trainee; target < {CREATE_TARGET_S:.0f} s for 20) {verdict}")
        mid = _mid_lab(created.lab_class)
        print(f"mid-lab: {mid['solved']} steps solved; matrix cells {mid['states']}")
        for label, figures in _page_times(created.lab_class, lab.trainer, args.runs).items():
            verdict = "ok" if figures["median_ms"] < PAGE_TARGET_MS else "OVER TARGET"
            print(f"{label}: median {figures['median_ms']:.1f} ms of {args.runs}, p95 {figures['p95_ms']:.1f} ms, max "
                  f"{figures['max_ms']:.0f} ms, {figures['queries']} queries, {figures['bytes'] // 1024} KiB "
                  f"(target < {PAGE_TARGET_MS:.0f} ms) {verdict}")
    finally:
        if django_ready:
            _cleanup_external()
        _admin_sql(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
