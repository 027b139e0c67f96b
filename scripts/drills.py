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

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the apps (portal, protection, vaults, security)

from fault_drills.main import main  # noqa: E402  (scripts/ is on the path when run as a script)

if __name__ == "__main__":
    sys.exit(main(description=__doc__.split("\n\n")[0]))
