"""Portal tasks: thin wrappers that load ids and call services."""

import socket

from celery import shared_task

from portal import services


@shared_task(acks_late=True, ignore_result=True, name=services.WORKER_CHECK_TASK)
def answer_worker_check(operation_id: str) -> None:
    services.complete_worker_check(operation_id, worker=socket.gethostname())
