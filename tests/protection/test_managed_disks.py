"""Azure managed disks end to end through the services, on real (sparse, a few MiB of data) images:
configure protection (snapshot resource group rules, readiness), incremental snapshot backups with their
Snapshot resources, and restores to a NEW disk checked byte for byte."""

from __future__ import annotations

import os
import random

import pytest
from django.core.exceptions import ValidationError

from portal.inventory import volumes
from portal.inventory.disks import services as disks
from portal.inventory.disks.models import ManagedDisk
from portal.inventory.models import Snapshot
from protection import datasource_types, readiness
from protection.instances import services as instance_services
from protection.restores import layout, services as restore_services, targets, validation
from security import roles
from tests.protection._restore_fixtures import (  # noqa: F401  (fixtures)
    backup, make_policy, protect, restore_and_run, vault,
)

DISK = datasource_types.AZURE_DISK
MIB = 1024**2


@pytest.fixture
def disk(lab):
    made = disks.create_disk(lab.trainer, resource_group=lab.lab_group, name="disk-data", region=lab.region, size_gib=1,
                             sku=ManagedDisk.Sku.STANDARDSSD_LRS)
    yield made
    volumes.remove_image(made.image_path)


def scribble(disk, seed: int, count: int = 3) -> None:
    """A VM's writes: ``count`` random MiB at seeded offsets."""
    rng = random.Random(seed)
    with volumes.open_image(disk.image_path, write=True) as fd:
        for _ in range(count):
            os.pwrite(fd, rng.randbytes(MIB), rng.randrange(disk.size_bytes // MIB) * MIB)


def data_bytes(path) -> int:
    """What the image holds in data regions (SEEK_DATA/SEEK_HOLE): what a backup reads."""
    total = 0
    with open(path, "rb") as image:
        fd, position = image.fileno(), 0
        size = os.fstat(fd).st_size
        while position < size:
            try:
                start = os.lseek(fd, position, os.SEEK_DATA)
            except OSError:  # ENXIO: no data after position
                break
            position = os.lseek(fd, start, os.SEEK_HOLE)
            total += position - start
    return total


def protect_disk(lab, vault, make_policy, disk, **selection):
    selection.setdefault("snapshot_resource_group_id", lab.target_group.resource_id)
    ds = readiness.Datasource(DISK, disk.resource_id, disk.name,
                              snapshot_resource_group_id=selection["snapshot_resource_group_id"])
    instance_services.assign_missing_roles(lab.trainer, vault=vault, datasources=[ds], level=readiness.SCOPE_RESOURCE)
    return protect(lab, vault, make_policy(DISK), disk, **selection)


def test_backups_are_incremental_snapshots_and_restore_makes_a_new_identical_disk(lab, vault, make_policy, disk):
    """GIVEN a disk with sample data, protected with a Daily disk policy WHEN it is backed up twice, with new
    data between THEN each point is an AzureBackup_ Snapshot in the snapshot RG, the second stores only what
    changed, and each point restores to a new disk byte for byte (sparse), never touching the source."""
    disks.write_sample_data(lab.trainer, disk)
    sample = data_bytes(disk.image_path)  # 4 MiB written in extents at random offsets, which may overlap
    instance = protect_disk(lab, vault, make_policy, disk)
    assert instance.protection_state == "ProtectionConfigured" and instance.datasource.label == "Azure Disk"
    first_sum = volumes.image_checksum(disk.image_path)
    first = backup(lab, instance)
    scribble(disk, seed=7)
    second_sum = volumes.image_checksum(disk.image_path)
    second = backup(lab, instance)

    assert first.datastore == second.datastore == "OperationalStore"
    snaps = Snapshot.objects.filter(source_disk=disk).order_by("taken_at")
    assert [s.resource_id for s in snaps] == [first.snapshot_resource_id, second.snapshot_resource_id]
    assert all(s.resource_group_id == lab.target_group.pk and s.name.startswith("AzureBackup_") for s in snaps)
    assert [s.checksum for s in snaps] == [first_sum, second_sum]
    # Incremental: the first read and stored the sample data (4 MiB written, less where extents overlapped); the
    # second stored only what the 3 MiB written since changed (the rest deduplicated against the first snapshot).
    assert first.stored_bytes > 2 * MIB and first.transferred_bytes >= sample > 2 * MIB
    assert 0 < second.stored_bytes <= 3.5 * MIB

    # The incremental point restores whole (each image hashed once: a 1 GiB sparse disk costs a second).
    job = restore_and_run(lab.trainer, second, targets.DiskTarget(lab.target_group.resource_id, "disk-restored"), lab=lab)
    assert job.status == "Completed", (job.error_code, job.error_message)
    new = ManagedDisk.objects.get(resource_group=lab.target_group, name="disk-restored")
    assert volumes.image_checksum(new.image_path) == second_sum == layout.volume_checksum(second)
    assert job.extended_info["restore"]["checksumMatches"] is True
    assert os.stat(new.image_path).st_size == disk.size_bytes
    assert os.stat(new.image_path).st_blocks * 512 < 16 * MIB  # holes stayed holes
    assert new.sku == disk.sku and new.region_id == vault.region_id and new.restored_checksum == second_sum
    assert len(Snapshot.objects.filter(source_disk=disk)) == 2 and disk.image_path.exists()  # the source untouched
    volumes.remove_image(new.image_path)


def test_restore_never_overwrites_and_needs_disk_restore_operator(lab, vault, make_policy, disk):
    scribble(disk, seed=1)
    instance = protect_disk(lab, vault, make_policy, disk)
    point = backup(lab, instance)
    taken = targets.DiskTarget(lab.lab_group.resource_id, disk.name.upper())  # names are case-blind
    with pytest.raises(ValidationError) as exc:
        restore_services.validate_restore(lab.trainer, point, taken)
    assert validation.DISK_EXISTS in validation.codes_of(exc.value)
    assert "already exists" in str(exc.value)

    target = targets.DiskTarget(lab.target_group.resource_id, "disk-new")
    resolved = validation.resolve(point, target)
    needs = {(n.role, n.check_scope.lower()) for n in restore_services.readiness.needs_for(point, target, resolved)}
    assert needs == {(roles.DISK_RESTORE_OPERATOR, lab.target_group.resource_id.lower()),
                     (roles.DISK_SNAPSHOT_CONTRIBUTOR, lab.target_group.resource_id.lower())}
    ready = restore_services.readiness.check(lab.trainer, vault, restore_services.readiness.needs_for(point, target, resolved))
    assert ready.status == readiness.ROLE_ASSIGNMENT_NOT_DONE and "Disk Restore Operator" in ready.message
    with pytest.raises(restore_services.RestoreNotReady):
        restore_services.start_restore(lab.trainer, point, target)
    assert not ManagedDisk.objects.filter(name="disk-new").exists()

    # Outside soft delete and immutability, the snapshot can be deleted in its resource group: the point can
    # then no longer be restored, and validation says why.
    from portal.inventory import services as inventory

    inventory.delete_snapshot(lab.trainer, Snapshot.objects.get(resource_id=point.snapshot_resource_id))
    with pytest.raises(ValidationError) as exc:
        restore_services.validate_restore(lab.trainer, point, target)
    assert validation.SNAPSHOT_MISSING in validation.codes_of(exc.value) and "deleted or moved" in str(exc.value)


def test_snapshot_group_rules_and_backup_readiness(lab, vault, make_policy, disk):
    """The snapshot RG must be in the disk's subscription and must NOT be the disk's own RG; readiness names
    Disk Backup Reader on the disk and Disk Snapshot Contributor on the snapshot RG, and Assign missing roles
    grants exactly those."""
    policy = make_policy(DISK)
    own = instance_services.DatasourceSelection(disk.resource_id, "bi-own", snapshot_resource_group_id=disk.resource_group.resource_id)
    with pytest.raises(ValidationError) as exc:
        instance_services.configure_protection(lab.trainer, vault=vault, policy=policy, selections=[own])
    assert "cannot be the disk's own resource group" in str(exc.value)

    ds = readiness.Datasource(DISK, disk.resource_id, disk.name, snapshot_resource_group_id=lab.target_group.resource_id)
    missing = readiness.missing_needs(vault.identity, ds)
    assert [(n.role, n.check_scope.lower()) for n in missing] == [
        (roles.DISK_BACKUP_READER, disk.resource_id.lower()), (roles.DISK_SNAPSHOT_CONTRIBUTOR, lab.target_group.resource_id.lower())]
    ok = instance_services.DatasourceSelection(disk.resource_id, "bi-ok", snapshot_resource_group_id=lab.target_group.resource_id)
    with pytest.raises(ValidationError) as exc:
        instance_services.configure_protection(lab.trainer, vault=vault, policy=policy, selections=[ok])
    assert "Role assignment not done" in str(exc.value)
    made = instance_services.assign_missing_roles(lab.trainer, vault=vault, datasources=[ds], level=readiness.SCOPE_RESOURCE)
    assert sorted(a.role.name for a in made) == [roles.DISK_BACKUP_READER, roles.DISK_SNAPSHOT_CONTRIBUTOR]
    assert readiness.missing_needs(vault.identity, ds) == []
    [instance] = instance_services.configure_protection(lab.trainer, vault=vault, policy=policy, selections=[ok])
    assert instance.snapshot_resource_group_id.lower() == lab.target_group.resource_id.lower()


def test_disk_points_are_outside_immutability_and_expire_with_their_snapshot(lab, vault, make_policy, disk):
    """GIVEN a locked (immutable) vault WHEN a disk's recovery point passes its 7 days THEN retention deletes it,
    its Snapshot resource and its data in the snapshot resource group's store: the operational tier is outside
    vault immutability, as in Azure."""
    import datetime as dt

    from portal.models import ResourceGroup
    from protection.backups import retention
    from protection.jobs import runner as jobs
    from protection.models import RecoveryPoint
    from protection.operational_store import open_operational_store
    from security import services as security_services
    from vaults import services as vault_services

    vault_services.update_immutability(lab.trainer, vault, state="Unlocked")
    vault_services.update_immutability(lab.trainer, vault, state="Locked", confirm_name=vault.name)
    scribble(disk, seed=2, count=1)
    instance = protect_disk(lab, vault, make_policy, disk)
    point = backup(lab, instance)
    assert Snapshot.objects.filter(resource_id=point.snapshot_resource_id).exists()
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(days=8))
    for job in retention.start_retention_runs():
        assert jobs.run(job.pk).status == "Completed"
    assert not RecoveryPoint.objects.filter(pk=point.pk).exists()
    assert not Snapshot.objects.filter(source_disk=disk).exists()
    group = ResourceGroup.objects.get(pk=lab.target_group.pk)
    with open_operational_store(group, create=False) as store:
        assert [s for s in store.list_snapshots() if s.source_id.startswith(f"bi:{instance.pk}")] == []


def test_the_disk_roles_are_azures_built_in_roles(lab):
    """Disk Backup Reader, Disk Snapshot Contributor and Disk Restore Operator with Azure's ids and actions."""
    from security.models import RoleDefinition

    expected = {
        roles.DISK_BACKUP_READER: ("3e5e47e6-65f7-47ef-90b5-e5dd4d455f24", {
            "Microsoft.Authorization/*/read", "Microsoft.Compute/disks/read",
            "Microsoft.Compute/disks/beginGetAccess/action"}),
        roles.DISK_SNAPSHOT_CONTRIBUTOR: ("7efff54f-a5b4-42b5-a1c5-5411624893ce", {
            "Microsoft.Authorization/*/read", "Microsoft.Compute/snapshots/delete", "Microsoft.Compute/snapshots/write",
            "Microsoft.Compute/snapshots/read", "Microsoft.Compute/snapshots/beginGetAccess/action",
            "Microsoft.Compute/snapshots/endGetAccess/action", "Microsoft.Compute/disks/beginGetAccess/action",
            "Microsoft.Storage/storageAccounts/listkeys/action", "Microsoft.Storage/storageAccounts/write",
            "Microsoft.Storage/storageAccounts/read", "Microsoft.Storage/storageAccounts/delete",
            "Microsoft.Resources/subscriptions/resourceGroups/read"}),
        roles.DISK_RESTORE_OPERATOR: ("b50d9833-a0cb-478e-945f-707fcc997c13", {
            "Microsoft.Authorization/*/read", "Microsoft.Compute/disks/write", "Microsoft.Compute/disks/read",
            "Microsoft.Resources/subscriptions/resourceGroups/read"}),
    }
    for name, (role_id, actions) in expected.items():
        role = RoleDefinition.objects.get(name=name)
        assert str(role.id) == role_id and set(role.actions) == actions and role.built_in, name
        assert name in roles.VAULT_IDENTITY_ROLES  # "Assign missing roles" may grant it to a vault identity
