"""Backup jobs pages and the vault overview's Jobs tile.

* Backup jobs (all vaults, and a vault's blade): filters as pills and selects; an indexed page of 50.
* A job: its details and a live progress bar (htmx polling every second; the answer for a finished
  job is 286, which makes htmx stop); Cancel for running backups.
* The Jobs tile on the vault overview: the last 24 hours, datasource type × operation × status, every
  number a link to the filtered list; it re-polls itself every 5 seconds.
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

from portal.shortcuts import can, page_number, unknown_filters
from protection import datasource_types, regions, selectors
from protection.jobs.services import CANCELLABLE_OPERATIONS, cancel_job
from protection.models import Job, JobOperation, JobStatus
from protection.pages import render_list, vault_context, vault_or_404
from security import clock
from security import operations as ops
from security.guards import evaluate

JOB_STATUS_CLASS = {
    JobStatus.IN_PROGRESS: "status-running", JobStatus.CANCELLING: "status-running",
    JobStatus.COMPLETED: "status-ok", JobStatus.COMPLETED_WITH_WARNINGS: "status-warn",
    JobStatus.FAILED: "status-failed", JobStatus.CANCELLED: "status-info",
}


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
        "instance_regions": regions.REGION_CHOICES,
        "statuses": [(s, JobStatus(s).label) for s in selectors.TILE_STATUSES],
        "ranges": [(k, label) for k, label, _ in selectors.TIME_RANGES],
        "vaults": list(vaults_for(request.principal).select_related(None).only("pk", "name")) if vault is None else None,
        "table_url": request.path,
    }


@login_required
def job_list(request):
    """Backup jobs of every vault the principal may read jobs in."""
    context = _list_context(request, selectors.jobs_for(request.principal))
    return render_list(request, "protection/jobs/list.html", "job-table", context)


@login_required
def vault_jobs(request, pk):
    """A vault's "Backup jobs" blade."""
    vault = vault_or_404(request, pk)
    if not can(request.principal, ops.JOB_READ, vault.resource_id):
        raise Http404("No such vault, or you do not have access to its jobs.")
    context = vault_context(request, vault, "jobs", **_list_context(request, Job.objects.filter(vault=vault), vault=vault))
    return render_list(request, "protection/jobs/vault_jobs.html", "job-table", context)


# =================================================================================================
# One job
# =================================================================================================


def _job_context(request, job):
    decorate(job)
    preview = evaluate(request.principal, ops.JOB_CANCEL, job)
    info = job.extended_info if isinstance(job.extended_info, dict) else {}
    items = info.get("items")  # (in a template, extended_info.items would be the dict's method)
    return {"job": job, "can_cancel": preview.allowed and job.status == JobStatus.IN_PROGRESS
            and job.operation in CANCELLABLE_OPERATIONS,
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
        cancel_job(request.principal, job)
        messages.success(request, "Cancelling the job: it stops within seconds and keeps nothing it wrote.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("protection:job_detail", pk=job.pk)


# =================================================================================================
# Vault overview tiles
# =================================================================================================


@login_required
def vault_jobs_tile(request, pk):
    vault = vault_or_404(request, pk)
    if not can(request.principal, ops.JOB_READ, vault.resource_id):
        return HttpResponse('<h2>Jobs</h2><p class="muted">You cannot read this vault\'s jobs.</p>')
    context = {"vault": vault, "tile": selectors.jobs_tile(vault), "list_url": reverse("protection:job_list")}
    return render(request, "protection/tiles/jobs.html", context)
