"""The lab seed for protection: one policy per type, the roles through "Assign missing roles", and the
seeded datasources protected — all through the services, idempotently."""

from portal.inventory import services as inv
from portal.inventory.lab import ELASTIC_SAN, LARGE_VOLUME, POSTGRES_SERVER, SOURCE_ACCOUNT, VOLUME, VOLUME_GROUP
from protection.lab import seed_protection
from protection.models import BackupPolicy, ProtectionState
from security import roles
from security.models import RoleAssignment


def test_seed_protection_protects_the_lab_datasources_once(lab):
    from vaults.lab import seed_vaults

    t = lab.trainer
    vault = seed_vaults(lab)
    account = inv.create_storage_account(t, resource_group=lab.lab_group, name=SOURCE_ACCOUNT, region=lab.region)
    inv.create_container(t, account, name="documents")
    san = inv.create_elastic_san(t, resource_group=lab.lab_group, name=ELASTIC_SAN, region=lab.region)
    group = inv.create_volume_group(t, san, name=VOLUME_GROUP)
    volume = inv.create_volume(t, group, name=VOLUME, size_gib=1)
    large = inv.create_volume(t, group, name=LARGE_VOLUME, size_gib=2)
    server = inv.create_postgres_server(t, resource_group=lab.lab_group, name=POSTGRES_SERVER, region=lab.region,
                                        host="127.0.0.1", admin_user="postgres")

    first = seed_protection(lab)
    second = seed_protection(lab)
    assert [i.pk for i in first] == [i.pk for i in second]
    assert sorted(BackupPolicy.objects.filter(vault=vault).values_list("name", flat=True)) == ["adls-daily", "esan-daily", "pg-weekly"]
    by_source = {i.datasource_resource_id: i for i in first}
    assert set(by_source) == {account.resource_id, volume.resource_id, large.resource_id, server.resource_id}
    assert all(i.protection_state == ProtectionState.CONFIGURED and i.next_backup_at for i in first)
    assert by_source[account.resource_id].all_containers
    assert by_source[volume.resource_id].snapshot_resource_group_id == lab.lab_group.resource_id
    held = {(a.role.name, a.scope) for a in RoleAssignment.objects.filter(principal=vault.identity).select_related("role")}
    assert held == {
        (roles.STORAGE_ACCOUNT_BACKUP_CONTRIBUTOR, account.resource_id),
        (roles.ELASTIC_SAN_SNAPSHOT_EXPORTER, san.resource_id),
        (roles.DISK_SNAPSHOT_CONTRIBUTOR, lab.lab_group.resource_id),
        (roles.POSTGRES_LTR_BACKUP_ROLE, server.resource_id),
        (roles.READER, lab.lab_group.resource_id),
    }
    vault.refresh_from_db()
    assert vault.has_ever_protected_item
