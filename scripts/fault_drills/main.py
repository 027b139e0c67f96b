"""Start-up, the run and the clean-up of `make drills`: own servers, Django against them, workers and
beat, each chosen drill in turn (a table after each), and everything stopped and removed at the end."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .common import say
from .data_faults import drill_bitflip, drill_concurrent, drill_disk
from .fleet import Fleet
from .lab import Lab
from .process_faults import drill_broker, drill_database, drill_kill
from .report import Row, print_table
from .servers import OwnPostgres, OwnRedis

DRILLS = ("kill", "broker", "database", "disk", "bitflip", "concurrent")


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


def parse_args(argv=None, description: str = "") -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--only", action="append", choices=DRILLS, help="run only this drill (repeatable)")
    parser.add_argument("--kills", type=int, default=20, help="kill -9 runs (default 20)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder with every log")
    return parser.parse_args(argv)


def _start_servers(redis: OwnRedis, postgres: OwnPostgres) -> None:
    redis.start()
    postgres.init()
    postgres.start()
    postgres.create_database("strongroom")
    say(f"own redis-server on :{redis.port}, own PostgreSQL on :{postgres.port}")


def _django_against(base: Path, redis: OwnRedis, postgres: OwnPostgres) -> dict:
    """Set Django up in this process against the drills' own servers and migrate; returns the environment
    the workers and beat get too."""
    env = {**os.environ,
           "DATABASE_URL": postgres.url("strongroom"), "CELERY_BROKER_URL": redis.url,
           "CELERY_TASK_DEFAULT_QUEUE": "strongroom-drills", "STRONGROOM_VAR_DIR": str(base / "var"),
           "STRONGROOM_DATA_ROOT": str(base / "data"), "STRONGROOM_MODE": "lab",
           "LOG_LEVEL": "WARNING"}
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from django.core.management import call_command

    say("migrating the drills' database")
    call_command("migrate", verbosity=0)
    return env


def _run_one(ctx: Context, name: str, runner) -> Row:
    say(f"drill: {name}")
    began = time.monotonic()
    ctx.current = None
    try:
        row = runner()
    except Exception as exc:  # a drill that cannot finish is a finding, not a crash of the table
        import traceback

        traceback.print_exc()
        row = ctx.current or Row(name)
        row.notes.append(f"the drill broke off: {type(exc).__name__}: {exc}")
    row.notes.append(f"took {time.monotonic() - began:.0f} s")
    return row


def run_drills(ctx: Context, chosen, kills: int) -> list[Row]:
    """Each chosen drill in the order of DRILLS, the table printed after each."""
    runners = {"kill": lambda: drill_kill(ctx, kills), "broker": lambda: drill_broker(ctx),
               "database": lambda: drill_database(ctx), "disk": lambda: drill_disk(ctx),
               "bitflip": lambda: drill_bitflip(ctx), "concurrent": lambda: drill_concurrent(ctx)}
    rows = []
    for name in DRILLS:
        if name in chosen:
            rows.append(_run_one(ctx, name, runners[name]))
            print_table(rows)
    return rows


def _tear_down(fleet, cleanups, postgres: OwnPostgres, redis: OwnRedis, base: Path, keep: bool) -> None:
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
    if keep:
        say(f"kept {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)


def main(argv=None, description: str = "") -> int:
    args = parse_args(argv, description)
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
        _start_servers(redis, postgres)
        env = _django_against(base, redis, postgres)
        logs = base / "logs"
        logs.mkdir()
        fleet = Fleet(env, logs)
        fleet.start()
        say("workers and beat are up")
        rows = run_drills(Context(redis, postgres, fleet, Lab(), cleanups), chosen, args.kills)
        bad = any(r.missed_a_target() for r in rows)
        print("All targets met." if not bad else "Some targets were missed (see the rows and notes above).")
        return 1 if bad else 0
    finally:
        _tear_down(fleet, cleanups, postgres, redis, base, args.keep)
