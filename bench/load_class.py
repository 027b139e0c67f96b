#!/usr/bin/env python3
"""Load test (not a test of the suite): a class of trainees on the portal, as issue 22 asks.

    .venv/bin/python bench/load_class.py [--trainees 20] [--run-time 60] [--max-requests 4000]
                                         [--web-workers 3] [--threads 4] [--celery-workers 2] [--no-jobs]
    make bench-load

1. A throwaway database (``sr_bench_load_<pid>``) on the PostgreSQL server of BENCH_DATABASE_URL (default
   postgres://postgres@127.0.0.1:5432/postgres), migrated and seeded with the lab tenancy; the trainer (a
   Lab Instructor) creates a class of ``--trainees`` doing adls-backup (bench/labs_class.py's steps).
   Three seats get as far as a protected account before the load starts; the third also has a point.
2. The portal is served the way production serves it: gunicorn (``--web-workers`` × ``--threads``) on a
   free port of 127.0.0.1, with DEBUG off; ``--celery-workers`` Celery workers at ``nice 10`` on the Redis
   broker LOAD_BROKER_URL (default redis://127.0.0.1:6379/9), one process each.
3. locust (bench/locustfile.py, headless) runs the trainees and the instructor for ``--run-time`` seconds
   or ``--max-requests`` requests. Five seconds in, seats 1 and 2 select Backup now and seat 3 restores
   (unless --no-jobs): the workers run them under the load.
4. It prints throughput, p50/p95/p99 end to end and errors (locust), each page's server time (gunicorn's
   access log: request in, response out) beside it, the queries each page makes (Django's test client),
   and how the two backups and the restore ended. Target: 0 errors, p95 under 300 ms end to end.

Everything made is dropped at the end: processes, the database, the sandboxes' logins, the data folder.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)
import labs_class  # noqa: E402 - the class bench's database, environment and clean-up helpers

P95_TARGET_MS = 300.0
SIGN_IN = ("sign-in page", "sign in")
LAB = "adls-backup"
_LOG_LINE = re.compile(r"^(?P<method>[A-Z]+) (?P<path>\S+) (?P<status>\d{3}) (?P<us>\d+) (?P<hx>\S+)$")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _locust_binary() -> str:
    for candidate in (os.environ.get("LOCUST", ""), os.path.join(os.path.dirname(sys.executable), "locust"),
                      shutil.which("locust") or ""):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    sys.exit("locust is not installed: `make .venv/.test-deps` installs it (or set LOCUST to its path).")


def _prepare_class(trainees: int) -> dict:
    """The class (timed), and seats 1–3 as far as a protected account (seat 3 with a recovery point)."""
    from labs import catalogue, services
    from portal.lab import seed_tenancy

    lab = seed_tenancy()
    started = time.perf_counter()
    created, _seconds = labs_class._create(lab.trainer, trainees, [LAB], False)
    made = time.perf_counter() - started
    steps = {s.key: s for s in catalogue.get(LAB).steps}
    seats = list(created.lab_class.seats.select_related("trainee").order_by("number")[:3])
    for seat in seats:
        run = services.active_run(seat.trainee, LAB)
        for key in ("vault", "policy", "roles", "protect") + (("backup",) if seat is seats[-1] else ()):
            steps[key].solve(services.context_for(run, run_jobs_inline=True))
        services.check_run(run)
    return {"lab": lab, "class": created.lab_class, "credentials": created.credentials, "seats": seats,
            "steps": steps, "create_s": made}


def _accounts_file(prepared: dict, tmp: str, instructor_password: str) -> str:
    from django.urls import reverse

    path = os.path.join(tmp, "accounts.json")
    with open(path, "w") as f:
        json.dump({"trainees": [{"username": c.username, "password": c.password} for c in prepared["credentials"]],
                   "instructor": {"username": prepared["lab"].trainer.user.username, "password": instructor_password},
                   "lab_path": reverse("labs:lab_page", args=[LAB]),
                   "class_path": reverse("labs:class_page", args=[prepared["class"].slug])}, f)
    os.chmod(path, 0o600)
    return path


def _start(name: str, argv: list[str], log: str, *, nice: int = 0) -> subprocess.Popen:
    out = open(log, "w")
    return subprocess.Popen((["nice", "-n", str(nice)] if nice else []) + argv, cwd=ROOT, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)


def _serve(args, port: int, tmp: str) -> list[subprocess.Popen]:
    py = sys.executable
    access = os.path.join(tmp, "access.log")
    web = _start("web", [py, "-m", "gunicorn", "portal.wsgi:application", "--bind", f"127.0.0.1:{port}",
                         "--workers", str(args.web_workers), "--threads", str(args.threads), "--worker-class", "gthread",
                         "--access-logfile", access, "--access-logformat",
                         '%(m)s %(U)s %(s)s %(D)s %({hx-request}i)s'], os.path.join(tmp, "web.log"))
    procs = [web]
    for n in range(args.celery_workers):
        procs.append(_start(f"worker{n}", [py, "-m", "celery", "-A", "portal", "worker", "--loglevel=WARNING",
                                           "--concurrency=1", "-n", f"load{n + 1}@%h", "--without-gossip",
                                           "--without-mingle"], os.path.join(tmp, f"worker{n + 1}.log"), nice=10))
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/signin/", timeout=2)
            return procs
        except OSError:
            if web.poll() is not None or time.monotonic() > deadline:
                _stop(procs)
                sys.exit(f"gunicorn did not start; see {os.path.join(tmp, 'web.log')}")
            time.sleep(0.3)


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _start_jobs(prepared: dict) -> list:
    """Seats 1 and 2: Backup now; seat 3: the lab's restore. Workers run them (not this process)."""
    from labs import services

    jobs = []
    for seat, key in zip(prepared["seats"], ("backup", "backup", "restore")):
        ctx = services.context_for(services.active_run(seat.trainee, LAB), run_jobs_inline=False)
        prepared["steps"][key].solve(ctx)
        jobs += [j.pk for j in ctx.jobs]
    return jobs


def _jobs_outcome(job_ids: list, wait_s: float) -> list[dict]:
    from protection.models import Job, JobStatus

    deadline = time.monotonic() + wait_s
    while True:
        jobs = list(Job.objects.filter(pk__in=job_ids))
        if all(j.status not in (JobStatus.IN_PROGRESS, JobStatus.CANCELLING) for j in jobs) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return [{"operation": j.operation, "status": j.status,
             "seconds": round((j.end_time - j.real_start_time).total_seconds(), 1) if j.end_time else None} for j in jobs]


def _locust(args, port: int, tmp: str, accounts: str) -> None:
    env = dict(os.environ, LOAD_ACCOUNTS=accounts, LOAD_MAX_REQUESTS=str(args.max_requests),
               LOAD_SAMPLES=os.path.join(tmp, "samples.json"), LOAD_THINK=args.think)
    users = args.trainees + 1
    subprocess.run([_locust_binary(), "-f", os.path.join(HERE, "locustfile.py"), "--headless", "--only-summary",
                    "-u", str(users), "-r", str(args.spawn_rate), "--run-time", f"{args.run_time}s", "--stop-timeout", "5",
                    "--host", f"http://127.0.0.1:{port}", "--csv", os.path.join(tmp, "locust"), "--loglevel", "WARNING"],
                   cwd=ROOT, env=env, check=False, stdout=open(os.path.join(tmp, "locust.log"), "w"),
                   stderr=subprocess.STDOUT)


def _locust_figures(tmp: str) -> tuple[dict, list[dict]]:
    with open(os.path.join(tmp, "locust_stats.csv")) as f:
        rows = list(csv.DictReader(f))
    total = next(r for r in rows if r["Name"] == "Aggregated")
    return total, [r for r in rows if r["Name"] != "Aggregated"]


def _server_times(tmp: str) -> dict:
    """Each path's server time (gunicorn's %(D)s, µs), grouped as locust names them."""
    groups: dict[str, list[float]] = {}
    with open(os.path.join(tmp, "access.log")) as f:
        for line in f:
            m = _LOG_LINE.match(line.strip())
            if not m:
                continue
            path, hx = m["path"], m["hx"] != "-"
            if path.startswith("/labs/classes/"):
                name = "class page (htmx part)" if hx else "class page"
            elif path.startswith("/labs/") and path != "/labs/":
                name = "lab page (htmx part)" if hx else "lab page"
            elif re.fullmatch(r"/backup/jobs/[0-9a-f-]{36}/", path):
                name = "a job"
            else:
                name = {"/labs/": "labs list", "/backup/instances/": "Backup instances", "/vaults/": "Backup vaults",
                        "/backup/jobs/": "Backup jobs", "/signin/": "sign in"}.get(path, path)
            groups.setdefault(name, []).append(int(m["us"]) / 1000)
    return {k: _percentiles(v) for k, v in groups.items()}


def _percentiles(values: list[float]) -> dict:
    values = sorted(values)

    def at(q):
        return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]

    return {"n": len(values), "p50": statistics.median(values), "p95": at(0.95), "p99": at(0.99)}


def _query_counts(prepared: dict, accounts_path: str) -> dict:
    """Queries per page, through Django's test client (one request each, after the load)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    accounts = json.load(open(accounts_path))
    trainee, instructor = Client(), Client()
    trainee.force_login(prepared["seats"][0].trainee.user)
    instructor.force_login(prepared["lab"].trainer.user)
    pages = [("lab page", trainee, accounts["lab_path"], {}), ("lab page (htmx part)", trainee, accounts["lab_path"],
             {"HTTP_HX_REQUEST": "true"}), ("labs list", trainee, "/labs/", {}),
             ("Backup instances", trainee, "/backup/instances/", {}), ("Backup vaults", trainee, "/vaults/", {}),
             ("Backup jobs", trainee, "/backup/jobs/", {}), ("class page", instructor, accounts["class_path"], {}),
             ("class page (htmx part)", instructor, accounts["class_path"], {"HTTP_HX_REQUEST": "true"})]
    out = {}
    for name, client, path, headers in pages:
        with CaptureQueriesContext(connection) as queries:
            client.get(path, **headers)
        out[name] = len(queries)
    return out


def _report(args, prepared: dict, tmp: str, jobs: list[dict], queries: dict, load: tuple) -> None:
    total, rows = _locust_figures(tmp)
    server = _server_times(tmp)
    samples = json.load(open(os.path.join(tmp, "samples.json")))
    every = _percentiles([t for _n, t, _f in samples])
    pages = _percentiles([t for n, t, _f in samples if n not in SIGN_IN])
    n, failures = len(samples), sum(1 for _n, _t, failed in samples if failed)
    p95 = pages["p95"]
    verdict = "ok" if failures == 0 and p95 < P95_TARGET_MS else "OVER TARGET"
    print(f"think time {args.think} s; class of {args.trainees} created in {prepared['create_s']:.0f} s; gunicorn {args.web_workers} workers × "
          f"{args.threads} threads, {args.celery_workers} Celery workers at nice 10; load average before "
          f"{load[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    print(f"{n} requests, {failures} errors, {float(total['Requests/s']):.1f} requests/s; end to end, every request: "
          f"p50 {every['p50']:.0f} ms, p95 {every['p95']:.0f} ms, p99 {every['p99']:.0f} ms")
    print(f"  the pages (without the {sum(1 for s in samples if s[0] in SIGN_IN)} sign-in requests): p50 {pages['p50']:.0f} ms, "
          f"p95 {p95:.0f} ms, p99 {pages['p99']:.0f} ms (target: 0 errors, p95 < {P95_TARGET_MS:.0f} ms) {verdict}")
    print(f"\n{'page':26} {'requests':>8} {'errors':>6} {'p50':>6} {'p95':>6} {'p99':>6}   server p50/p95  queries")
    for r in sorted(rows, key=lambda r: -int(r["Request Count"])):
        s = server.get(r["Name"], {})
        srv = f"{s['p50']:6.0f} {s['p95']:6.0f}" if s else f"{'':13}"
        print(f"{r['Name']:26} {int(r['Request Count']):8d} {int(r['Failure Count']):6d} {float(r['50%']):6.0f} "
              f"{float(r['95%']):6.0f} {float(r['99%']):6.0f}   {srv}  {queries.get(r['Name'], '')!s:>6}")
    if jobs:
        print("\njobs under the load: " + "; ".join(f"{j['operation']} {j['status']} in {j['seconds']} s" for j in jobs))
    failures_csv = os.path.join(tmp, "locust_failures.csv")
    if failures and os.path.exists(failures_csv):
        print("\n" + open(failures_csv).read())
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"total": total, "every": every, "without_sign_in": pages, "errors": failures, "pages": rows, "server": server, "queries": queries, "jobs": jobs,
                       "load_average": [load[0], os.getloadavg()[0]], "create_s": prepared["create_s"]}, f, indent=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trainees", type=int, default=20)
    parser.add_argument("--run-time", type=int, default=60, help="seconds of load (locust's --run-time)")
    parser.add_argument("--max-requests", type=int, default=4000, help="stop after this many requests")
    parser.add_argument("--web-workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--celery-workers", type=int, default=2)
    parser.add_argument("--spawn-rate", type=float, default=2.0,
                        help="users started a second (a class signs in over ~10 s, not in one instant)")
    parser.add_argument("--think", default="1,3", help="seconds between a trainee's clicks, min,max (0,0: flat out)")
    parser.add_argument("--no-jobs", action="store_true", help="no backups and restore during the load")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    server = labs_class._server(os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    name = f"sr_bench_load_{os.getpid()}"
    tmp = tempfile.mkdtemp(prefix="sr-bench-load-")
    instructor_password = secrets.token_urlsafe(12)
    labs_class._admin_sql(server, f'CREATE DATABASE "{name}"')
    labs_class._environment(labs_class._url(server, name), tmp)
    os.environ.update({"ALLOWED_HOSTS": "127.0.0.1,localhost,testserver", "STRONGROOM_DEMO_PASSWORD": instructor_password,
                       "CELERY_BROKER_URL": os.environ.get("LOAD_BROKER_URL", "redis://127.0.0.1:6379/9")})
    procs: list = []
    django_ready = False
    try:
        labs_class._setup()
        django_ready = True
        from django.conf import settings

        settings.STRONGROOM_LAB_CLASS_CAP = max(args.trainees, 30)
        print(f"database {name}; creating a class of {args.trainees} ({LAB}) …", flush=True)
        prepared = _prepare_class(args.trainees)
        accounts = _accounts_file(prepared, tmp, instructor_password)
        port = _free_port()
        procs = _serve(args, port, tmp)
        load = os.getloadavg()
        started: list = []
        if not args.no_jobs:
            timer = threading.Timer(5.0, lambda: started.extend(_start_jobs(prepared)))
            timer.start()
        print(f"load: {args.trainees} trainees + 1 instructor for {args.run_time} s or {args.max_requests} requests "
              f"on 127.0.0.1:{port} …", flush=True)
        _locust(args, port, tmp, accounts)
        if not args.no_jobs:
            timer.join()
        jobs = _jobs_outcome(started, 120) if started else []
        _report(args, prepared, tmp, jobs, _query_counts(prepared, accounts), load)
    finally:
        _stop(procs)
        if django_ready:
            labs_class._cleanup_external()
        labs_class._admin_sql(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if os.environ.get("LOAD_KEEP_LOGS"):
            print(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
