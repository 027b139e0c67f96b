"""Fixtures for the restore and verify tests (imported by those modules).

Recovery points are made the way a person makes them: protection configured through the services,
real data put in through the inventory, and a Backup now job run inline. Restores are started through
`start_restore` and their job run inline, as a worker would.
"""

from __future__ import annotations

import os
import secrets

import pytest

from protection.jobs import runner as jobs
from protection.models import Job, RecoveryPoint
from protection.restores import readiness, services, targets
from tests.protection._backups_fixtures import (  # noqa: F401  (re-exported fixtures)
    ADLS, ESAN, PG, at, backup_now_and_run, filled, grant, inventory, make_policy, pg_database,
    principal_with, protect, put_blobs, sample_files, spec, tree_of, vault,
)


def latest_point(instance) -> RecoveryPoint:
    return RecoveryPoint.objects.filter(instance=instance).order_by("-recovery_point_time").first()


def backup(lab, instance) -> RecoveryPoint:
    job = backup_now_and_run(lab.trainer, instance)
    # Other test runs share the PostgreSQL cluster: a database they drop mid-backup is only a warning.
    assert job.status in ("Completed", "CompletedWithWarnings"), (job.error_code, job.error_message)
    return latest_point(instance)


def restore_and_run(principal, point, target, *, assign=True, lab=None) -> Job:
    """Assign the restore roles (as the trainer), start the restore and run its job inline."""
    if assign:
        services.assign_restore_roles(lab.trainer if lab else principal, point, target, readiness.SCOPE_RESOURCE)
    job = services.start_restore(principal, point, target)
    jobs.run(job.pk)
    job.refresh_from_db()
    return job


def new_account(lab, prefix="sarestore", *, region=None, group=None, hns=True):
    from portal.inventory import services as inv

    return inv.create_storage_account(lab.trainer, resource_group=group or lab.target_group,
                                      name=f"{prefix}{secrets.token_hex(3)}", region=region or lab.region,
                                      hierarchical_namespace=hns)


def stat_tree(root) -> dict:
    """{relative path: (size, mtime_ns)} of every file below ``root``."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            out[os.path.relpath(full, root)] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture
def adls_setup(lab, vault, make_policy, filled):
    """An ADLS instance over the filled account, backed up once, and an empty target account."""
    policy = make_policy(ADLS)
    instance = protect(lab, vault, policy, filled.account)
    point = backup(lab, instance)
    target_account = new_account(lab)
    return instance, point, target_account


def adls_target(account, *names, prefixes=None, renames=None) -> targets.AdlsTarget:
    prefixes, renames = prefixes or {}, renames or {}
    if not names:
        return targets.AdlsTarget(account.resource_id, True,
                                  tuple(targets.ContainerChoice(n, (), r) for n, r in renames.items()))
    return targets.AdlsTarget(account.resource_id, False, tuple(
        targets.ContainerChoice(n, tuple(prefixes.get(n, ())), renames.get(n, "")) for n in names))
