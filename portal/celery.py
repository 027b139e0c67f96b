import ctypes
import os
import signal
import sys

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("strongroom")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def die_with_the_worker(worker_pid: int):
    """A pool process ends when its worker does: a worker killed with SIGKILL (the OOM killer, a
    supervisor's last resort) must not leave its pool processes running beside its replacement.
    Returns the worker_process_init receiver; `worker_pid` is the worker's own pid, taken before it
    forks its pool."""

    def receiver(**_):
        # Only in a forked pool process: a solo pool (or a test's worker thread) runs in the worker itself.
        if not sys.platform.startswith("linux") or os.getpid() == worker_pid:
            return
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        # The worker may have died between the fork and the line above: no signal would come then.
        if os.getppid() != worker_pid:
            os._exit(1)

    return receiver
