"""A lost Redis connection must not end the worker (portal/broker.py).

The fault drill: Redis restarts while a task runs. With kombu's stock Redis transport (celery and
kombu 5.7.0) the worker logs "Restoring 1 unacknowledged message(s)", then dies of
``AttributeError: 'NoneType' object has no attribute 'hostname'`` — at once, or when the task that ran
across the outage finishes and acknowledges on the old channel. Here a real worker subprocess with
Strongroom's Celery settings rides out a restart of a Redis server of the test's own (never the shared
one): the running task finishes, the worker reconnects, and tasks sent afterwards run.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from portal import broker
from tests.conftest import wait_until

pytestmark = [pytest.mark.celery, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def test_settings_select_the_fixed_transport_for_redis(settings):
    assert settings.CELERY_BROKER_CONNECTION_MAX_RETRIES is None  # never give up on the broker
    assert settings.CELERY_BROKER_CONNECTION_RETRY is True
    if settings.CELERY_BROKER_URL.startswith("redis://"):
        from portal.celery import app

        assert settings.CELERY_BROKER_TRANSPORT == "portal.broker:Transport"
        with app.connection_for_read() as conn:
            assert isinstance(conn.transport, broker.Transport)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout, what, log=None):
    wait_until(predicate, timeout, what, explain=(lambda: log.read_text(errors="replace")[-4000:]) if log else None)


def _answers(port) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def test_a_worker_survives_a_broker_restart_while_a_task_runs(tmp_path):
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("STRONGROOM_REQUIRE_SERVICES"):
            pytest.fail("CI needs redis-server for the broker restart test.")
        pytest.skip("redis-server is not installed.")
    port = _free_port()
    data = tmp_path / "redis"
    data.mkdir()

    def start_redis():
        # Saves on shutdown and loads on start, like a packaged Redis: the unacked message survives.
        proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
                                 "--save", "3600 1", "--appendonly", "no"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(lambda: _answers(port), 10, "redis-server to answer")
        return proc

    marks = tmp_path / "marks"
    marks.mkdir()
    url = f"redis://127.0.0.1:{port}/0"
    env = {**os.environ, "CELERY_BROKER_URL": url, "CELERY_TASK_DEFAULT_QUEUE": "broker-test"}
    log = tmp_path / "worker.log"
    redis_proc = start_redis()
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tests.portal._broker_app", "worker", "-Q", "broker-test", "-c", "2",
         "-l", "INFO", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    sender = subprocess.run  # tasks are sent from a child with the same settings, like the web server does
    send = [sys.executable, "-c", "import sys; from tests.portal._broker_app import mark; mark.delay(*sys.argv[1:3], float(sys.argv[3]))"]
    try:
        _wait(lambda: "ready." in log.read_text(errors="replace"), 30, "the worker to start", log)
        sender([*send, str(marks), "long", "6"], cwd=ROOT, env=env, check=True)
        _wait(lambda: "received" in log.read_text(errors="replace"), 15, "the long task to start", log)

        redis_proc.send_signal(signal.SIGTERM)  # a broker restart
        redis_proc.wait(10)
        time.sleep(1)
        redis_proc = start_redis()

        _wait(lambda: (marks / "long").exists(), 30, "the task that ran across the restart", log)
        sender([*send, str(marks), "after", "0"], cwd=ROOT, env=env, check=True)
        _wait(lambda: (marks / "after").exists(), 30, "a task sent after the restart", log)
        time.sleep(1)
        text = log.read_text(errors="replace")
        assert worker.poll() is None, text[-4000:]
        assert "Unrecoverable error" not in text, text[-4000:]
        assert "Connection to broker lost" in text  # the restart really reached the worker
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
        redis_proc.terminate()
        redis_proc.wait(10)
