"""Jobs pages, the vault overview tiles, and the backup actions of a backup instance.

* Backup jobs (all vaults, and a vault's blade): filters as pills and selects; an indexed page of 50.
* A job: its details and a live progress bar (htmx polling every second; the answer for a finished
  job is 286, which makes htmx stop); Cancel for running backups.
* Tiles on the vault overview: Jobs (last 24 hours, datasource type × operation × status, every
  number a link to the filtered list) and Backup instances (datasource type × protection status).
  Each tile re-polls itself every 5 seconds.
* On a backup instance's page: Backup now (pick a retention rule), Stop backup (Retain forever / Retain
  as per policy), Resume backup, recovery points in a time range, and the last 7 days of jobs.
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
from django_htmx.http import HttpResponseStopPolling, trigger_client_event

from portal.shortcuts import can, get_visible_or_404, page_number, unknown_filters
from protection import datasource_types, selectors
from protection.forms_backups import BackupNowForm, RecoveryPointRangeForm, StopBackupForm
from protection.models import Job, JobOperation, JobStatus, ProtectionState, RecoveryPoint
from protection.services import backups
from security import clock
from security import operations as ops
from security.guards import GuardDenied, evaluate

JOB_STATUS_CLASS = {
    JobStatus.IN_PROGRESS: "status-running", JobStatus.CANCELLING: "status-running",
    JobStatus.COMPLETED: "status-ok", JobStatus.COMPLETED_WITH_WARNINGS: "status-warn",
    JobStatus.FAILED: "status-failed", JobStatus.CANCELLED: "status-info",
}


def _vault_or_404(request, pk):
    from vaults.services import VAULT_READ, vaults_for

    return get_visible_or_404(request.principal, vaults_for(request.principal), VAULT_READ, pk=pk)


def _vault_context(request, vault, blade, **extra):
    from vaults import panels
    from vaults.services import VAULT_DELETE, VAULT_WRITE, security_level

    principal = request.principal
    return {"vault": vault, "resource": vault, "blade": blade, "extra_blades": panels.blades(vault),
            "can_write": can(principal, VAULT_WRITE, vault.resource_id),
            "can_delete": can(principal, VAULT_DELETE, vault.resource_id),
            "assessment": security_level(vault), **extra}


def _instance_or_404(request, pk):
    from protection.services.instances import instances_for

    return get_visible_or_404(request.principal, instances_for(request.principal).select_related(
                              "vault__region__paired_region", "policy"),
                              ops.INSTANCE_READ, pk=pk)


def _job_or_404(request, pk):
    job = selectors.jobs_for(request.principal).select_related("vault", "instance", "recovery_point").filter(pk=pk).first()
    if job is None:
        raise Http404("No such job, or you do not have access to it.")
    return job


def decorate(job: Job, now=None) -> Job:
    """Add what the pages show: status class, elapsed time, rate and ETA (computed here, not stored)."""
    now = now or clock.now()
    job.status_class = JOB_STATUS_CLASS.get(job.status, "status-info")
    end = job.end_time or now
    elapsed = max((end - job.start_time).total_seconds(), 0.0)
    job.elapsed = dt.timedelta(seconds=int(elapsed))
    job.rate = job.bytes_done / elapsed if elapsed >= 1 and job.bytes_done else None
    job.eta = None
    if not job.is_finished and job.rate:
        if job.bytes_total and job.bytes_total > job.bytes_done:
            job.eta = dt.timedelta(seconds=int((job.bytes_total - job.bytes_done) / job.rate))
        elif job.items_total and job.items_done and job.items_total > job.items_done:
            per_item = elapsed / job.items_done
            job.eta = dt.timedelta(seconds=int((job.items_total - job.items_done) * per_item))
    job.datasource_label = datasource_types.TYPES[job.datasource_type].label if job.datasource_type in datasource_types.TYPES else "—"
    return job


# =================================================================================================
# Jobs lists
# =================================================================================================


def _list_context(request, jobs, *, vault=None):
    from vaults.services import vaults_for

    filters = selectors.JobFilters.from_query(request.GET)
    if vault is not None:
        filters.vault = ""
    number = page_number(request.GET.get("page"))
    page = selectors.job_page(selectors.filter_jobs(jobs, filters), number)
    now = clock.now()
    for job in page.rows:
        decorate(job, now)
    query = request.GET.copy()
    query.pop("page", None)
    # Built here, not in the template: a query key named "items" would shadow QueryDict.items there.
    range_query = query.copy()
    range_query.pop("range", None)
    running = any(not j.is_finished for j in page.rows)
    return {
        "page": page, "filters": filters, "page_query": query.urlencode(), "range_query": range_query.urlencode(),
        "unknown_filters": unknown_filters({"vault": filters.vault}, {"vault": "vault"}),
        "running": running,
        "types": datasource_types.TYPES.values(), "operations": JobOperation.choices,
        "statuses": [(s, JobStatus(s).label) for s in selectors.TILE_STATUSES],
        "ranges": [(k, label) for k, label, _ in selectors.TIME_RANGES],
        "vaults": list(vaults_for(request.principal).select_related(None).only("pk", "name")) if vault is None else None,
        "table_url": request.path,
    }


@login_required
def job_list(request):
    """Backup jobs of every vault the principal may read jobs in."""
    context = _list_context(request, selectors.jobs_for(request.principal))
    template = "protection/jobs/list.html#job-table" if request.htmx and not request.htmx.boosted else "protection/jobs/list.html"
    return render(request, template, context)


@login_required
def vault_jobs(request, pk):
    """A vault's "Backup jobs" blade."""
    vault = _vault_or_404(request, pk)
    if not can(request.principal, ops.JOB_READ, vault.resource_id):
        raise Http404("No such vault, or you do not have access to its jobs.")
    context = _vault_context(request, vault, "jobs", **_list_context(request, Job.objects.filter(vault=vault), vault=vault))
    template = ("protection/jobs/vault_jobs.html#job-table" if request.htmx and not request.htmx.boosted
                else "protection/jobs/vault_jobs.html")
    return render(request, template, context)


# =================================================================================================
# One job
# =================================================================================================


def _job_context(request, job):
    decorate(job)
    preview = evaluate(request.principal, ops.JOB_CANCEL, job)
    info = job.extended_info if isinstance(job.extended_info, dict) else {}
    items = info.get("items")  # (in a template, extended_info.items would be the dict's method)
    return {"job": job, "can_cancel": preview.allowed and job.status == JobStatus.IN_PROGRESS
            and job.operation in (JobOperation.BACKUP, JobOperation.RESTORE, JobOperation.VERIFY, JobOperation.REPLICATION),
            "cancel_refusal": "" if preview.allowed else preview.reason,
            "point_items": items if isinstance(items, list) else [],
            "leftovers_deferred": _deferred_leftovers(info)}


def _deferred_leftovers(info) -> list:
    """Leftover snapshots still under store retention, with their retain-until as a date."""
    import datetime as dt

    rows = []
    for d in info.get("leftoversDeferred") or []:
        try:
            until = dt.datetime.fromisoformat(d["retainUntil"]) if d.get("retainUntil") else None
        except (TypeError, ValueError):
            until = None
        rows.append({**d, "until": until})
    return rows


@login_required
def job_detail(request, pk):
    job = _job_or_404(request, pk)
    return render(request, "protection/jobs/detail.html", {**_job_context(request, job), "job_page": True})


@login_required
def job_progress(request, pk):
    """The progress fragment; 286 (stop polling) once the job has ended."""
    job = _job_or_404(request, pk)
    context = _job_context(request, job)
    context["job_page"] = request.GET.get("view") == "job"
    content = render(request, "protection/jobs/detail.html#job-progress", context).content
    if context["job_page"]:
        # On the job's own page, End time, Duration and Cancel follow the progress (out of band).
        oob = {**context, "oob": True}
        for part in ("job-end-time", "job-duration", "job-cancel"):
            content += render(request, f"protection/jobs/detail.html#{part}", oob).content
    if job.is_finished:
        response = HttpResponseStopPolling()
        response.content = content
        # Lists on the same page (the instance's recovery points and jobs) refresh themselves.
        return trigger_client_event(response, "jobs-changed")
    return HttpResponse(content)


@login_required
@require_POST
def job_cancel(request, pk):
    job = _job_or_404(request, pk)
    try:
        backups.cancel_job(request.principal, job)
        messages.success(request, "Cancelling the job: it stops within seconds and keeps nothing it wrote.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("protection:job_detail", pk=job.pk)


# =================================================================================================
# Vault overview tiles
# =================================================================================================


@login_required
def vault_jobs_tile(request, pk):
    vault = _vault_or_404(request, pk)
    if not can(request.principal, ops.JOB_READ, vault.resource_id):
        return HttpResponse('<h2>Jobs</h2><p class="muted">You cannot read this vault\'s jobs.</p>')
    context = {"vault": vault, "tile": selectors.jobs_tile(vault), "list_url": reverse("protection:job_list")}
    return render(request, "protection/tiles/jobs.html", context)


@login_required
def vault_instances_tile(request, pk):
    vault = _vault_or_404(request, pk)
    context = {"vault": vault, "tile": selectors.instances_tile(vault), "list_url": reverse("protection:instance_list")}
    return render(request, "protection/tiles/instances.html", context)


# =================================================================================================
# A backup instance: actions, recovery points, jobs
# =================================================================================================


def _actionable(decision) -> bool:
    """A button stays clickable unless RBAC refuses: a refusal by another guard (a Resource Guard, an
    immutable vault) is previewed beside it and explained after the click."""
    return decision.allowed or decision.guard != "RBAC"


def _actions_context(request, instance, **extra):
    from protection.services import deletion

    principal = request.principal
    state = instance.protection_state
    preview = {name: evaluate(principal, op, instance) for name, op in (
        ("backup", ops.BACKUP_ACTION), ("stop", ops.STOP_PROTECTION), ("suspend", ops.SUSPEND_BACKUPS),
        ("resume", ops.RESUME_PROTECTION if state == ProtectionState.STOPPED else ops.RESUME_BACKUPS))}
    preview["delete"] = deletion.deletion_preview(principal, instance)
    preview["undelete"] = deletion.undelete_preview(principal, instance)
    return {
        "instance": instance,
        "can_backup": state == ProtectionState.CONFIGURED and preview["backup"].allowed,
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
        if not decision.allowed:
            raise GuardDenied(decision)
    form = BackupNowForm(instance, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = backups.backup_now(request.principal, instance, retention_rule=form.cleaned_data["retention_rule"])
        except ValidationError as exc:
            from portal.shortcuts import form_errors_from

            form_errors_from(form, exc)
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
            from portal.shortcuts import form_errors_from

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
    points = list(RecoveryPoint.objects.filter(instance=instance, recovery_point_time__gte=start,
                                               recovery_point_time__lte=end).order_by("-recovery_point_time")[:200])
    for point in points:
        point.snapshot_name = point.snapshot_resource_id.rsplit("/", 1)[-1] if point.snapshot_resource_id else ""
    geo = instance.vault.is_geo_redundant and instance.vault.secondary_region is not None
    return render(request, "protection/backups/_recovery_points.html",
                  {"instance": instance, "points": points, "form": form, "start": start, "end": end, "geo": geo})


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
