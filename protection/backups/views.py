"""A backup instance's backup actions, recovery points and jobs (on its page).

* The command bar: Backup now (pick a retention rule), Stop backup (Retain forever / Retain as per
  policy), Resume backup, and Delete / Undelete (`protection.deletion`), each previewing what the
  guards would say.
* Recovery points in a time range, and the last 7 days of the instance's jobs.
"""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_htmx.http import trigger_client_event

from portal.shortcuts import can, form_errors_from
from protection import datasource_types
from protection.backups import services as backups
from protection.backups.forms import BackupNowForm, RecoveryPointRangeForm, StopBackupForm
from protection.deletion import services as deletion
from protection.instances.views import instance_or_404
from protection.jobs.views import decorate
from protection.models import Job, ProtectionState, RecoveryPoint
from security import clock
from security import operations as ops
from security.guards import GuardDenied, evaluate


def _instance_or_404(request, pk):
    return instance_or_404(request, pk, related=("vault__region__paired_region", "policy"))


def _actionable(decision) -> bool:
    """A button stays clickable unless RBAC refuses: a refusal by another guard (a Resource Guard, an
    immutable vault) is previewed beside it and explained after the click."""
    return decision.allowed or decision.guard != "RBAC"


def _actions_context(request, instance, **extra):
    principal = request.principal
    state = instance.protection_state
    preview = {name: evaluate(principal, op, instance) for name, op in (
        ("backup", ops.BACKUP_ACTION), ("stop", ops.STOP_PROTECTION), ("suspend", ops.SUSPEND_BACKUPS),
        ("resume", ops.RESUME_PROTECTION if state == ProtectionState.STOPPED else ops.RESUME_BACKUPS))}
    preview["delete"] = deletion.deletion_preview(principal, instance)
    preview["undelete"] = deletion.undelete_preview(principal, instance)
    return {
        "instance": instance,
        # Clickable unless RBAC refuses: another guard (the vault's network) is previewed beside it.
        "can_backup": state == ProtectionState.CONFIGURED and _actionable(preview["backup"]),
        "backup_refusal": preview["backup"].reason,
        "can_stop": state in (ProtectionState.CONFIGURED, ProtectionState.PROTECTION_ERROR, ProtectionState.BACKUPS_SUSPENDED)
        and (_actionable(preview["stop"]) or _actionable(preview["suspend"])),
        "stop_refusal": preview["stop"].reason if not preview["stop"].allowed else "",
        "can_resume": state in (ProtectionState.STOPPED, ProtectionState.BACKUPS_SUSPENDED) and _actionable(preview["resume"]),
        "resume_refusal": preview["resume"].reason,
        "is_stoppable_state": state in (ProtectionState.CONFIGURED, ProtectionState.PROTECTION_ERROR, ProtectionState.BACKUPS_SUSPENDED),
        "is_resumable_state": state in (ProtectionState.STOPPED, ProtectionState.BACKUPS_SUSPENDED),
        # Delete (backup data): offered from the states it may start from; Undelete for soft-deleted ones.
        "is_deletable_state": state in deletion.DELETABLE_STATES,
        "can_delete": _actionable(preview["delete"]),
        "delete_refusal": preview["delete"].reason,
        "is_soft_deleted": state == ProtectionState.SOFT_DELETED,
        "can_undelete": _actionable(preview["undelete"]),
        "undelete_refusal": preview["undelete"].reason,
        "delete_change": deletion.delete_change(instance),
        **extra,
    }


@login_required
def instance_actions(request, pk):
    """The command bar fragment of an instance: Backup now, Stop backup, Resume backup."""
    instance = _instance_or_404(request, pk)
    return render(request, "protection/backups/_actions.html", _actions_context(request, instance))


@login_required
def instance_backup_now(request, pk):
    """GET: the Backup now pane (retention rule choice). POST: start the on-demand backup."""
    instance = _instance_or_404(request, pk)
    if request.method == "GET":  # someone who may read but not back up meets the explained denial
        decision = evaluate(request.principal, ops.BACKUP_ACTION, instance)
        if not _actionable(decision):
            raise GuardDenied(decision)
    form = BackupNowForm(instance, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = backups.backup_now(request.principal, instance, retention_rule=form.cleaned_data["retention_rule"])
        except ValidationError as exc:
            form_errors_from(form, exc)
        except GuardDenied as exc:  # another guard than RBAC (the vault's network): said in the pane
            if exc.decision.guard == "RBAC":
                raise
            refusal = exc.decision
            form.add_error(None, f"{refusal.code}: {refusal.reason} What would lift it: {refusal.remedy}")
        else:
            if request.htmx:
                response = render(request, "protection/backups/_backup_started.html", {"job": decorate(job), "instance": instance})
                return trigger_client_event(response, "jobs-changed")
            return redirect("protection:job_detail", pk=job.pk)
    template = "protection/backups/_backup_now.html" if request.htmx else "protection/backups/backup_now.html"
    return render(request, template, {"instance": instance, "form": form})


@login_required
def instance_stop_backup(request, pk):
    """GET: the Stop backup pane. POST: stop with Retain forever or Retain as per policy."""
    instance = _instance_or_404(request, pk)
    if request.method == "GET":  # RBAC refusals only: the pane previews what other guards would say
        decision = evaluate(request.principal, ops.SUSPEND_BACKUPS, instance)
        forever = evaluate(request.principal, ops.STOP_PROTECTION, instance)
        if not _actionable(decision) and not _actionable(forever):
            raise GuardDenied(decision)
    form = StopBackupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            backups.stop_backup(request.principal, instance, retain=form.cleaned_data["retain"],
                                reason=form.cleaned_data["reason"], comments=form.cleaned_data["comments"])
        except ValidationError as exc:
            form_errors_from(form, exc)
        else:
            label = "Retain forever" if form.cleaned_data["retain"] == backups.RETAIN_FOREVER else "Retain as per policy"
            messages.success(request, f"Backup of '{instance.name}' stopped ({label}).")
            return _back_to_instance(request, instance)
    template = "protection/backups/_stop_backup.html" if request.htmx else "protection/backups/stop_backup.html"
    return render(request, template, {"instance": instance, "form": form})


@login_required
@require_POST
def instance_resume_backup(request, pk):
    instance = _instance_or_404(request, pk)
    try:
        backups.resume_backup(request.principal, instance)
        messages.success(request, f"Backup of '{instance.name}' resumed: the next backup is at "
                                  f"{instance.next_backup_at:%Y-%m-%d %H:%M} UTC.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return _back_to_instance(request, instance)


def _back_to_instance(request, instance):
    url = reverse("protection:instance_detail", args=[instance.pk])
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


@login_required
def instance_recovery_points(request, pk):
    """The instance's recovery points in a time range (default: the last 30 days)."""
    instance = _instance_or_404(request, pk)
    if not can(request.principal, ops.RECOVERY_POINT_READ, instance.resource_id):
        raise Http404("No such backup instance, or you cannot read its recovery points.")
    form = RecoveryPointRangeForm(request.GET or None)
    start, end = form.range()
    points = RecoveryPoint.objects.filter(instance=instance, recovery_point_time__gte=start, recovery_point_time__lte=end)
    if form.chosen_tier():  # archive tier (issue 21): filter by tier
        points = points.filter(datastore=form.chosen_tier())
    points = list(points.order_by("-recovery_point_time")[:200])
    for point in points:
        point.snapshot_name = point.snapshot_resource_id.rsplit("/", 1)[-1] if point.snapshot_resource_id else ""
    archive = tier_context(request.principal, instance, points)
    geo = instance.vault.is_geo_redundant and instance.vault.secondary_region is not None
    return render(request, "protection/backups/_recovery_points.html",
                  {"instance": instance, "points": points, "form": form, "start": start, "end": end, "geo": geo,
                   "tier": form.chosen_tier(), **archive})


def tier_context(principal, instance, points) -> dict:
    """Archive tier (issue 21): each point's reason it may not move to archive ('' when it may), whether the
    principal may move points, and when an archived point's rehydrated copy is restorable."""
    from protection.archive_eligibility import ineligible_reason, tiering_in_progress

    now = clock.now()
    running = tiering_in_progress([p.pk for p in points])
    for point in points:
        point.archive_reason = ineligible_reason(point, now, running=running)
        point.rehydrated = point.is_rehydrated(now)
    return {"can_move": can(principal, ops.RECOVERY_POINT_MOVE, instance.resource_id),
            "tiering_offered": instance.datasource_type == datasource_types.POSTGRES_FLEX}


@login_required
def instance_jobs(request, pk):
    """The last 7 days of the instance's jobs (polls while one runs), with View all."""
    instance = _instance_or_404(request, pk)
    now = clock.now()
    jobs = list(Job.objects.filter(instance=instance, start_time__gte=now - dt.timedelta(days=7))
                .select_related("vault").order_by("-real_start_time")[:20])
    for job in jobs:
        decorate(job, now)
    context = {"instance": instance, "jobs": jobs, "running": any(not j.is_finished for j in jobs),
               "view_all": f"{reverse('protection:job_list')}?instance={instance.pk}&range=30d"}
    return render(request, "protection/backups/_instance_jobs.html", context)
