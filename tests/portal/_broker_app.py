"""A Celery app for tests/portal/test_broker.py's worker subprocess: Strongroom's Celery settings
(portal/settings.py, CELERY_*), and one task that needs no database: sleep, then leave a mark."""

import os
import time
from pathlib import Path

import django
from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django.setup()

app = Celery("strongroom-broker-test")
app.config_from_object("django.conf:settings", namespace="CELERY")


@app.task(name="broker_test.mark", acks_late=True)
def mark(folder: str, name: str, seconds: float) -> None:
    time.sleep(seconds)
    (Path(folder) / name).write_text("done")
