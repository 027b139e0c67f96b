"""Real, separate Celery workers and beat, kept alive by a small supervisor, as `make run` or systemd would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .common import ROOT, wait_until


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
