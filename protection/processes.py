"""Every external tool a job runs (pg_dump, pg_dumpall, pg_restore, ...) starts through here.

A tool runs in its own process group (its own session), so stopping it stops whatever it spawned
too, and a signal meant for the worker never reaches it by accident. While a job runs, its tools
are registered under the job's id: the job's watchdog (`protection.jobs.runner.Watchdog`) kills their
groups when the user cancels or when the job stalls, which wakes a handler that is blocked reading
the tool's output (a ``pg_dump`` waiting on a table lock writes nothing, so no progress callback
would ever notice the cancel).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time

logger = logging.getLogger(__name__)

TERM_GRACE_SECONDS = 3.0  # SIGTERM first (pg_dump then cancels its query on the server), then SIGKILL

_lock = threading.Lock()
_running: dict[str, set] = {}  # job id -> the Popen objects of its running tools


def popen(command, *, job=None, **kwargs) -> subprocess.Popen:
    """``subprocess.Popen`` in a new process group, registered under ``job`` while it runs.

    Call `release` (or use `running`) when done with it."""
    kwargs.setdefault("start_new_session", True)
    proc = subprocess.Popen(command, **kwargs)
    if job is not None:
        proc._strongroom_job = str(job.pk)  # noqa: SLF001 - where `release` finds it again
        with _lock:
            _running.setdefault(str(job.pk), set()).add(proc)
    return proc


def release(proc: subprocess.Popen) -> None:
    """Stop the tool's whole group if anything of it still runs, reap it, and unregister it."""
    try:
        if proc.poll() is None:
            kill_group(proc, grace=0)
        proc.wait()
    finally:
        job_id = getattr(proc, "_strongroom_job", None)
        if job_id is not None:
            with _lock:
                procs = _running.get(job_id)
                if procs is not None:
                    procs.discard(proc)
                    if not procs:
                        _running.pop(job_id, None)


@contextlib.contextmanager
def running(command, *, job=None, **kwargs):
    """`popen` as a context manager: the tool's group is stopped and reaped on the way out."""
    proc = popen(command, job=job, **kwargs)
    try:
        yield proc
    finally:
        release(proc)


def _signal_group(proc: subprocess.Popen, sig) -> bool:
    try:
        os.killpg(proc.pid, sig)  # the group id is the leader's pid (start_new_session)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def kill_group(proc: subprocess.Popen, *, grace: float = TERM_GRACE_SECONDS) -> None:
    """SIGTERM the tool's group, then SIGKILL it if it has not exited after ``grace`` seconds."""
    if grace > 0 and _signal_group(proc, signal.SIGTERM):
        deadline = time.monotonic() + grace
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    _signal_group(proc, signal.SIGKILL)


def pids_for(job_id) -> list[int]:
    """Pids of the tools a job is running in this process (for the watchdog and for tests)."""
    with _lock:
        return sorted(p.pid for p in _running.get(str(job_id), ()))


def stop_all_for(job_id, *, grace: float = TERM_GRACE_SECONDS) -> int:
    """Stop every tool the job runs in this process; returns how many were running."""
    with _lock:
        procs = [p for p in _running.get(str(job_id), ()) if p.poll() is None]
    for proc in procs:
        logger.info("Stopping %s (pid %s) of job %s", proc.args[0] if proc.args else "?", proc.pid, job_id)
        kill_group(proc, grace=grace)
    return len(procs)
