"""Rows for the re-dating tests (issue 21): a backup instance and recovery points made directly (the
re-dating logic reads only their times, tags and expiries), shared by the service and API tests."""

from __future__ import annotations

import datetime as dt
import secrets

from protection import datasource_types
from protection.models import BackupInstance, ProtectionState, RecoveryPoint
from security import clock

DAY = dt.timedelta(days=1)


def bare_instance(vault, policy, *, name=None) -> BackupInstance:
    """A configured instance of ``policy`` (no datasource behind it: nothing backs it up)."""
    tag = secrets.token_hex(3)
    return BackupInstance.objects.create(
        vault=vault, policy=policy, name=name or f"bi-rd-{tag}", datasource_type=policy.datasource_type,
        datasource_resource_id=f"{vault.resource_group.resource_id}/providers/Test/redate/{tag}",
        datasource_name=f"ds-{tag}", datasource_location=vault.region_id, protection_state=ProtectionState.CONFIGURED,
    )


def points(instance, specs, *, now=None) -> list[RecoveryPoint]:
    """``specs``: (days ago, retention tag, expiry in days from the point). One INSERT."""
    now = now or clock.now()
    store = datasource_types.get(instance.datasource_type).datastore
    rows = [RecoveryPoint(instance=instance, recovery_point_time=now - ago * DAY, datastore=store,
                          policy_name=instance.policy.name, rule_name="BackupDaily", retention_tag=tag,
                          expiry_time=now - ago * DAY + keep * DAY, manifest_id=f"m{n}")
            for n, (ago, tag, keep) in enumerate(specs)]
    return RecoveryPoint.objects.bulk_create(rows)
