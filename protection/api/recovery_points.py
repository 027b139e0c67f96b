"""``recoveryPoints`` (list with ``$filter``, get) as ``AzureBackupRecoveryPointResource`` holding an
``AzureBackupDiscreteRecoveryPoint``.

``$filter`` is what the Azure CLI and PowerShell send: clauses joined by ``and``, each
``<name> eq '<value>'``, e.g. ``startDate eq '2026-01-01T00:00:00Z' and endDate eq '2026-02-01T00:00:00Z'``
(times are UTC when they name no offset). Supported names: ``startDate``, ``endDate``,
``restorePointState`` (Completed | Partial) and ``isVisible``; anything else is a 400 naming ``$filter``.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid

import ninja
from django.utils.dateparse import parse_date, parse_datetime

from portal.api.envelope import page, proxy, timestamp
from portal.api.errors import ArmError, not_found
from protection.api.lookups import INSTANCE_PATH, instance
from protection.models import RecoveryPoint
from security import operations as ops

router = ninja.Router(tags=["Recovery points"])

POINT_TYPE = f"{ops.INSTANCE_TYPE}/recoveryPoints"
FILTER = "$filter"
# A point a shorter retention expired (issue 21, reference §3.2) stays listed until its purge, as the
# portal lists it "being soft deleted": its data store says SOFT_DELETED with ``visible`` false (so
# ``isVisible eq 'true'`` leaves it out), ``expiryTime`` is when it is purged; restoring it is refused.
SOFT_DELETED_STATE = "SOFT_DELETED"
ORDER = ("-recovery_point_time", "-id")
_CLAUSE = re.compile(r"^\s*(\w+)\s+eq\s+'([^']*)'\s*$", re.IGNORECASE)
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)


# =================================================================================================
# AzureBackupDiscreteRecoveryPoint
# =================================================================================================


def point_properties(point: RecoveryPoint) -> dict:
    instance_row = point.instance
    incremental = instance_row.datasource.backup_type == "Incremental"
    state = "COMMITTED" if point.state == RecoveryPoint.State.COMPLETED else "PARTIAL"
    if point.is_soft_deleted:  # issue 21: listed, not visible (not restorable), expiryTime = its purge
        state = SOFT_DELETED_STATE
    store = {"id": str(point.pk), "type": point.datastore, "creationTime": timestamp(point.recovery_point_time),
             "state": state, "visible": not point.is_soft_deleted}
    if point.expiry_time:
        store["expiryTime"] = timestamp(point.expiry_time)
    if point.datastore == RecoveryPoint.Datastore.ARCHIVE and point.rehydration_status:  # archive tier (issue 21)
        store["rehydrationStatus"] = point.rehydration_status
        if point.rehydration_expiry_time:
            store["rehydrationExpiryTime"] = timestamp(point.rehydration_expiry_time)
    props = {
        "objectType": "AzureBackupDiscreteRecoveryPoint",
        "friendlyName": str(point.pk),
        "recoveryPointDataStoresDetails": [store],
        "recoveryPointTime": timestamp(point.recovery_point_time),
        "policyName": point.policy_name,
        "recoveryPointId": str(point.pk),
        "recoveryPointType": "Incremental" if incremental else "Full",
        "retentionTagName": point.retention_tag,
        "recoveryPointState": point.state,
    }
    if point.expiry_time:
        props["expiryTime"] = timestamp(point.expiry_time)
    return props


def point_resource(point: RecoveryPoint) -> dict:
    return proxy(point.resource_id, str(point.pk), POINT_TYPE, point_properties(point))


# =================================================================================================
# $filter
# =================================================================================================


def _bad_filter(message: str) -> ArmError:
    return ArmError(400, "InvalidFilter", f"The $filter is not valid: {message} Write clauses as "
                    "\"startDate eq '2026-01-01T00:00:00Z' and endDate eq '2026-02-01T00:00:00Z'\".", target=FILTER)


def _moment(name: str, value: str) -> dt.datetime:
    if "T" in value and " " in value:  # an offset's "+" that arrived unescaped in the query string
        value = value.replace(" ", "+")
    try:
        moment = parse_datetime(value.replace(" ", "T", 1) if "T" not in value else value)
        if moment is None and (day := parse_date(value)) is not None:
            moment = dt.datetime.combine(day, dt.time.min)
    except ValueError:
        moment = None
    if moment is None:
        raise _bad_filter(f"{name} '{value}' is not an ISO 8601 date and time.")
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def apply_filter(queryset, text: str | None):
    """``queryset`` narrowed by an OData ``$filter`` (see the module docstring)."""
    if text is None or not text.strip():
        return queryset
    seen = set()
    for clause in _AND.split(text.strip()):
        match = _CLAUSE.match(clause)
        if not match:
            raise _bad_filter(f"'{clause.strip()}' is not \"<name> eq '<value>'\".")
        name, value = match.group(1).lower(), match.group(2)
        if name in seen:
            raise _bad_filter(f"{match.group(1)} appears twice.")
        seen.add(name)
        if name == "startdate":
            queryset = queryset.filter(recovery_point_time__gte=_moment("startDate", value))
        elif name == "enddate":
            queryset = queryset.filter(recovery_point_time__lte=_moment("endDate", value))
        elif name == "restorepointstate":
            states = {s.value.lower(): s.value for s in RecoveryPoint.State}
            if value.lower() not in states:
                raise _bad_filter(f"restorePointState is one of {', '.join(states.values())}.")
            queryset = queryset.filter(state=states[value.lower()])
        elif name == "isvisible":
            if value.lower() not in ("true", "false"):
                raise _bad_filter("isVisible is 'true' or 'false'.")
            queryset = queryset.filter(soft_deleted_at__isnull=value.lower() == "true")
        else:
            raise _bad_filter(f"'{match.group(1)}' is not a filter this list supports (startDate, endDate, "
                              "restorePointState, isVisible).")
    return queryset


# =================================================================================================
# Routes
# =================================================================================================


def _points_of(found):
    # An expired point is on its way out (retention deletes it): it is not offered.
    return (RecoveryPoint.objects.filter(instance=found, expired_at__isnull=True)
            .select_related("instance__vault"))


@router.get(INSTANCE_PATH + "/recoveryPoints", url_name="recovery_points_list")
def list_points(request, subscriptionId: str, resourceGroupName: str, vaultName: str, backupInstanceName: str):
    found = instance(request, subscriptionId, resourceGroupName, vaultName, backupInstanceName,
                     action=ops.RECOVERY_POINT_READ)
    points = apply_filter(_points_of(found), request.GET.get(FILTER))
    return page(request, points, point_resource, order=ORDER)


def find_point(found, point_id: str) -> RecoveryPoint | None:
    try:
        key = uuid.UUID(str(point_id))
    except ValueError:
        return None
    return _points_of(found).filter(pk=key).first()


@router.get(INSTANCE_PATH + "/recoveryPoints/{recoveryPointId}", url_name="recovery_points_get")
def get_point(request, subscriptionId: str, resourceGroupName: str, vaultName: str, backupInstanceName: str,
              recoveryPointId: str):
    found = instance(request, subscriptionId, resourceGroupName, vaultName, backupInstanceName,
                     action=ops.RECOVERY_POINT_READ)
    point = find_point(found, recoveryPointId)
    if point is None:
        raise not_found(POINT_TYPE, f"{vaultName}/{backupInstanceName}/{recoveryPointId}", found.vault.resource_group.name)
    return point_resource(point)
