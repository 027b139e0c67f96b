import ctypes
import os
import signal
import sys

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("strongroom")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def die_with_the_worker(**_):
    """A pool process ends when its worker does: a worker killed with SIGKILL (the OOM killer, a
    supervisor's last resort) must not leave its pool processes running beside its replacement."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
