"""Read queries for the jobs pages and the vault overview tiles.

Each stays a fixed number of queries however many rows exist: the Jobs tile is one aggregate over
the vault's last 24 hours (index ``job_vault_time_idx``), the Backup instances tile one aggregate over
the vault's instances, and a jobs page one indexed slice (``real_start_time`` descending, so jobs
stamped while the lab clock was ahead never sit above later real-time ones; a page and one row more
to know whether there is a next page — no COUNT over a million rows).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, Q

from portal.shortcuts import filter_by_id, parse_uuid, search_text
from protection import datasource_types, regions
from protection.models import BackupInstance, Job, JobOperation, JobStatus, ProtectionState
from security import clock
from security.operations import INSTANCE_READ, JOB_READ
from security.rbac import ScopeSet, visible_to
from vaults.models import BackupVault


TIME_RANGES = [("24h", "Last 24 hours", dt.timedelta(hours=24)), ("7d", "Last 7 days", dt.timedelta(days=7)),
               ("30d", "Last 30 days", dt.timedelta(days=30)), ("all", "All time", None)]
DEFAULT_RANGE = "24h"
JOB_PAGE_SIZE = 50

# Columns of the Jobs tile, in the portal's order (Cancelling counts with In progress).
TILE_STATUSES = [JobStatus.IN_PROGRESS, JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_WARNINGS, JobStatus.FAILED,
                 JobStatus.CANCELLED]
# Columns of the Backup instances tile.
TILE_STATES = [ProtectionState.CONFIGURED, ProtectionState.CONFIGURING, ProtectionState.CONFIGURING_FAILED,
               ProtectionState.BACKUPS_SUSPENDED, ProtectionState.STOPPED, ProtectionState.PROTECTION_ERROR,
               ProtectionState.SOFT_DELETED]
TILE_STATUS_SHORT = {JobStatus.COMPLETED_WITH_WARNINGS: "Warnings"}
TILE_STATE_SHORT = {
    ProtectionState.CONFIGURED: "Configured", ProtectionState.CONFIGURING: "Configuring",
    ProtectionState.CONFIGURING_FAILED: "Configuring failed", ProtectionState.BACKUPS_SUSPENDED: "Suspended",
    ProtectionState.STOPPED: "Stopped", ProtectionState.PROTECTION_ERROR: "Error",
    ProtectionState.SOFT_DELETED: "Soft deleted",
}
_STATE_COLUMN = {ProtectionState.UPDATING: ProtectionState.CONFIGURED,
                 ProtectionState.SOFT_DELETING: ProtectionState.SOFT_DELETED}


def visible_instances(principal, instances):
    """The rows of ``instances`` that ``principal`` may read, without matching 10k ids one by one.

    An instance's id is its vault's id + ``/backupInstances/<name>``, so a scope that covers the vault covers
    every instance in it, and one that does not can cover an instance only from inside the vault (a role
    on the instance itself): the filter is ``vault_id IN (the vaults the scopes cover)``, plus the ids of
    instances below an instance-level scope. The same rows as ``visible(principal, instances, INSTANCE_READ)``.
    """
    scopes = visible_to(principal, INSTANCE_READ)
    if scopes.everything or not scopes.scopes:
        return instances.filter(scopes.q("resource_id"))
    inside = ScopeSet(tuple(s for s in scopes.scopes if "/backupinstances/" in s.lower()))
    visible = Q(vault__in=BackupVault.objects.filter(scopes.q("resource_id")).values("pk"))
    if inside.scopes:
        visible |= inside.q("resource_id")
    return instances.filter(visible)


def instance_page(instances, number, size: int, *, one_vault: bool = False):
    """One page of ``instances`` (the lists' order: vault name, then name), fetched in two steps: the page's
    ids from a narrow sort (index ``instance_vault_name_idx`` when one vault is listed), then those rows
    with what the table shows. Sorting 10k full rows joined to their vault and policy cost the most.
    ``one_vault``: every row is in one vault, so name order is the same order, and it needs no join."""
    from django.core.paginator import Paginator

    ids = instances.order_by(*(("name",) if one_vault else ("vault__name", "name"))).values_list("pk", flat=True)
    page = Paginator(ids, size).get_page(number)
    # The page's rows from the same queryset, so its annotations (the replication lag) and joins come along.
    rows = instances.select_related("vault", "policy").in_bulk(list(page.object_list))
    page.object_list = [rows[pk] for pk in page.object_list if pk in rows]
    return page


def jobs_for(principal):
    """Jobs of the vaults where ``principal`` may read jobs (every jobs list starts here).

    The vaults are looked up first and named by id: matched through a join on their ids, the planner
    guessed a handful of vaults, looped over each one's jobs and sorted thousands of rows; with the ids
    spelled out it walks ``job_real_time_idx`` newest first and stops at the page."""
    scopes = visible_to(principal, JOB_READ)
    if scopes.everything:
        return Job.objects.all()
    vaults = list(BackupVault.objects.filter(scopes.q("resource_id")).values_list("pk", flat=True))
    return Job.objects.filter(vault_id__in=vaults)


def time_range(key: str):
    for k, label, delta in TIME_RANGES:
        if k == key:
            return k, label, delta
    return time_range(DEFAULT_RANGE)


@dataclass
class JobFilters:
    vault: str = ""
    type: str = ""  # datasource type short name
    operation: str = ""
    status: str = ""
    range: str = DEFAULT_RANGE
    instance: str = ""
    q: str = ""
    region: str = ""  # Instance Region: "" (all), Primary or Secondary (`protection.regions`)

    @classmethod
    def from_query(cls, query) -> "JobFilters":
        f = cls(**{k: (query.get(k) or "").strip() for k in ("vault", "type", "operation", "status", "instance", "q")})
        f.q = search_text(f.q)
        f.region = regions.parse((query.get("region") or "").strip())
        f.range = time_range(query.get("range") or DEFAULT_RANGE)[0]
        return f

    @property
    def any(self) -> bool:
        return any((self.vault, self.type, self.operation, self.status, self.instance, self.q, self.region)) or self.range != DEFAULT_RANGE


def filter_jobs(jobs, f: JobFilters, *, now=None):
    now = now or clock.now()
    _key, _label, delta = time_range(f.range)
    if delta is not None:
        jobs = jobs.filter(start_time__gte=now - delta)
    jobs = filter_by_id(jobs, "vault_id", f.vault)  # an unknown vault: an empty list
    kind = datasource_types.by_short(f.type)
    if kind:
        jobs = jobs.filter(datasource_type=kind.api_name)
    elif f.type == "none":
        jobs = jobs.filter(datasource_type="")
    if f.operation in JobOperation.values:
        jobs = jobs.filter(operation=f.operation)
    if f.status == JobStatus.IN_PROGRESS:
        jobs = jobs.filter(status__in=[JobStatus.IN_PROGRESS, JobStatus.CANCELLING])
    elif f.status in JobStatus.values:
        jobs = jobs.filter(status=f.status)
    jobs = filter_by_id(jobs, "instance_id", f.instance, parse=parse_uuid)
    if f.q:
        jobs = jobs.filter(Q(instance_name__icontains=f.q) | Q(datasource_name__icontains=f.q))
    return regions.filter_jobs(jobs, f.region)


@dataclass
class JobPage:
    rows: list
    number: int
    has_next: bool
    start: int

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def end(self) -> int:
        return self.start + len(self.rows) - 1


def job_page(jobs, page: int, size: int = JOB_PAGE_SIZE) -> JobPage:
    page = max(1, page)
    offset = (page - 1) * size
    rows = list(jobs.select_related("vault").order_by("-real_start_time", "-id")[offset:offset + size + 1])
    return JobPage(rows[:size], page, len(rows) > size, offset + 1)


# --- tiles ---------------------------------------------------------------------------------------


@dataclass
class TileRow:
    key: str  # datasource short name ("" for vault-level jobs such as retention)
    label: str
    operation: str
    operation_label: str
    counts: list  # [(status, count)], in column order
    total: int


def jobs_tile(vault, *, now=None) -> dict:
    """Counts of the vault's jobs of the last 24 hours by datasource type × operation × status."""
    now = now or clock.now()
    rows = (Job.objects.filter(vault=vault, start_time__gte=now - dt.timedelta(hours=24))
            .values_list("datasource_type", "operation", "status").annotate(n=Count("id")).order_by())
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for kind, operation, status, n in rows:
        column = JobStatus.IN_PROGRESS if status == JobStatus.CANCELLING else status
        bucket = counts.setdefault((kind, operation), {})
        bucket[column] = bucket.get(column, 0) + n
    out = []
    for (kind, operation), by_status in counts.items():
        ds = datasource_types.TYPES.get(kind)
        out.append(TileRow(ds.short if ds else "none", ds.label if ds else "Vault", operation,
                           JobOperation(operation).label if operation in JobOperation.values else operation,
                           [(s, by_status.get(s, 0)) for s in TILE_STATUSES], sum(by_status.values())))
    out.sort(key=lambda r: (r.label == "Vault", r.label, r.operation_label))
    totals = [(s, sum(dict(r.counts)[s] for r in out)) for s in TILE_STATUSES]
    groups: list[dict] = []
    for row in out:
        if not groups or groups[-1]["label"] != row.label:
            groups.append({"key": row.key, "label": row.label, "rows": []})
        groups[-1]["rows"].append(row)
    return {"rows": out, "groups": groups, "totals": totals, "total": sum(r.total for r in out),
            "statuses": [(s, JobStatus(s).label, TILE_STATUS_SHORT.get(s, JobStatus(s).label)) for s in TILE_STATUSES],
            "since": now - dt.timedelta(hours=24)}


def instances_tile(vault) -> dict:
    """Counts of the vault's backup instances by datasource type × protection status."""
    rows = (BackupInstance.objects.filter(vault=vault).values_list("datasource_type", "protection_state")
            .annotate(n=Count("id")).order_by())
    counts: dict[str, dict[str, int]] = {}
    for kind, state, n in rows:
        column = _STATE_COLUMN.get(state, state)
        bucket = counts.setdefault(kind, {})
        bucket[column] = bucket.get(column, 0) + n
    shown = [s for s in TILE_STATES if s in {ProtectionState.CONFIGURED, ProtectionState.STOPPED,
                                               ProtectionState.BACKUPS_SUSPENDED}
             or any(s in b for b in counts.values())]
    out = []
    for kind, ds in datasource_types.TYPES.items():
        by_state = counts.get(kind, {})
        out.append({"short": ds.short, "label": ds.label, "counts": [(s, by_state.get(s, 0)) for s in shown],
                    "total": sum(by_state.values())})
    return {"rows": out, "states": [(s, ProtectionState(s).label, TILE_STATE_SHORT.get(s, ProtectionState(s).label))
                                    for s in shown],
            "total": sum(r["total"] for r in out)}
