"""Portal tasks: thin wrappers that load ids and call services."""

import socket

from celery import shared_task


@shared_task(acks_late=True, ignore_result=True)
def answer_worker_check(operation_id: str) -> None:
    from portal import services

    services.complete_worker_check(operation_id, worker=socket.gethostname())
