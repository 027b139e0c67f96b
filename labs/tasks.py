"""Labs tasks: thin wrappers that load ids and call services."""

from celery import shared_task

from labs import services, teardown
from labs.models import LabRun, Sandbox


@shared_task(acks_late=True, ignore_result=True, name=services.CHECK_TASK)
def check_run(run_id: str) -> None:
    run = LabRun.objects.filter(pk=run_id, active=True).select_related("sandbox", "trainee").first()
    if run is not None:
        services.check_run(run)


@shared_task(acks_late=True, ignore_result=True, name=services.TEARDOWN_TASK)
def take_down_retired(sandbox_id: str | None = None) -> None:
    """Take down one retired sandbox, or (from the schedule) every one still kept."""
    retired = Sandbox.objects.filter(status=Sandbox.Status.RETIRED)
    if sandbox_id:
        retired = retired.filter(pk=sandbox_id)
    for sandbox in retired:
        teardown.take_down(sandbox)
