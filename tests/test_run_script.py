"""`make run`'s scripts/run.sh supervises web, worker and beat: a process that dies is started
again while the others keep serving, and Ctrl-C stops everything. Runs the real script on the
embedded defaults (SQLite, filesystem broker) in a temporary var folder, on a free port."""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from tests.conftest import wait_until

from scripts.fault_drills.common import free_port as _free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


def _status(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/signin/", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def _tls_status(port: int, ca: Path) -> int | None:
    """The sign-in page's status over HTTPS, verifying the certificate against Strongroom's CA."""
    import ssl

    try:
        context = ssl.create_default_context(cafile=str(ca))
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/signin/", timeout=5, context=context) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ssl.SSLError):
        return None


def _wait(predicate, timeout, what, log: Path):
    return wait_until(predicate, timeout, what, every=0.1, explain=lambda: log.read_text(errors="replace")[-4000:])


def test_run_restarts_a_dead_worker_and_web_keeps_serving_and_ctrl_c_stops_all(tmp_path):
    port = _free_port()
    var = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(STRONGROOM_VAR_DIR=str(var), STRONGROOM_PORT=str(port), STRONGROOM_STOP_TIMEOUT="5", DEBUG="true",
               STRONGROOM_DNS_PORT=str(_free_port()), STRONGROOM_API_PORT=str(api_port := _free_port()))
    log = tmp_path / "run.log"
    subprocess.run([str(ROOT / ".venv/bin/python"), "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    main = subprocess.Popen(["bash", "scripts/run.sh"], cwd=ROOT, env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    run_dir = var / "run"

    def pid_of(name):
        try:
            pid = int((run_dir / f"{name}.pid").read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _alive(pid) else None

    try:
        for name in ("web", "api", "worker", "beat", "dns"):
            _wait(lambda: pid_of(name), 60, f"{name} to start", log)
        _wait(lambda: _status(port) == 200, 60, "the sign-in page", log)
        _wait(lambda: _tls_status(api_port, var / "tls" / "ca.pem") == 200, 60, "the sign-in page over TLS", log)
        assert (var / "tls" / "ca-key.pem").stat().st_mode & 0o777 == 0o600

        worker = pid_of("worker")
        os.kill(worker, signal.SIGKILL)
        _wait(lambda: pid_of("worker") not in (None, worker), 30, "a new worker", log)
        assert _status(port) == 200  # the web server kept serving
        assert "worker exited (status 137); starting it again" in log.read_text()

        web = pid_of("web")
        os.kill(web, signal.SIGKILL)
        _wait(lambda: pid_of("web") not in (None, web), 30, "a new web server", log)
        _wait(lambda: _status(port) == 200, 60, "the sign-in page after the restart", log)
        beat = pid_of("beat")
        assert beat and _alive(main.pid)
    finally:
        os.killpg(main.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole foreground group
        try:
            main.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(main.pid, signal.SIGKILL)
            raise
    try:
        _wait(lambda: not _group_pids(main.pid), 30, "every process of run.sh to stop", log)
    finally:
        left = _group_pids(main.pid)
        commands = [Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode() for pid in left]
        if left:
            os.killpg(main.pid, signal.SIGKILL)
        assert not left, f"still running after Ctrl-C: {commands}"
    assert "Stopped." in log.read_text()
    assert _status(port) is None
