"""Move to archive on a recovery point (a POST from the instance's recovery point list)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from portal.shortcuts import can, render_denied
from protection.models import RecoveryPoint
from protection.tiering import services
from security import operations as ops
from security.guards import GuardDenied


@login_required
@require_POST
def recovery_point_move_to_archive(request, pk):
    point = RecoveryPoint.objects.select_related("instance__vault").filter(pk=pk).first()
    if point is None or not can(request.principal, ops.RECOVERY_POINT_READ, point.instance.resource_id):
        raise Http404("No such recovery point, or you cannot read it.")
    try:
        job = services.move_to_archive(request.principal, point)
    except GuardDenied as exc:
        return render_denied(request, exc)
    except ValidationError as exc:
        messages.error(request, " ".join(m.split(": ", 1)[-1] for m in exc.messages))
        return redirect("protection:instance_detail", pk=point.instance.pk)
    messages.success(request, "Moving the recovery point to the archive tier: its data is copied to Vault-archive, "
                              "verified there, then removed from Vault-standard. Follow the Tiering job.")
    return redirect("protection:job_detail", pk=job.pk)
