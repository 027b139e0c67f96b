"""Data access to recovery points, through the services: listing a point's files, a database's table of
contents and downloading an item need the live-read right or the restore permission (download: both),
and an instance state that allows restore. Expected outcomes are literal tables, per persona."""

from __future__ import annotations

import pytest

from portal.inventory import services as inv
from protection.models import BackupInstance, ProtectionState
from protection.restores import access, browse
from security import roles
from security.guards import GuardDenied
from security.models import ActivityLogEntry
from tests.protection._restore_fixtures import (  # noqa: F401
    PG, adls_setup, backup, filled, grant, inventory, make_policy, pg_database, protect, vault,
)

pytestmark = pytest.mark.django_db

A, D = "allowed", "denied"

# persona -> (list a container's files, download a blob). Written from the seeded roles, not computed:
#   trainer: Owner at "/" (restore, and listKeys on the account: reads blobs with the access key)
#   backup-admin: Backup Contributor + RBAC Administrator on the lab RG (restore; no listKeys, no data role)
#   backup-operator: Backup Operator + Reader on the lab RG (restore; cannot read the blobs live)
#   reader: Reader on the lab subscription (neither)
#   security-admin: Owner of the Security subscription only; outsider: no role
ADLS_MATRIX = {
    "trainer": (A, A),
    "backup-admin": (A, D),
    "backup-operator": (A, D),
    "reader": (D, D),
    "security-admin": (D, D),
    "outsider": (D, D),
}


def _who(lab, key):
    return lab.trainer if key == "trainer" else lab.personas[key].principal


def _outcome(call) -> str:
    try:
        result = call()
    except GuardDenied:
        return D
    if hasattr(result, "close"):
        result.close()
    return A


def _list(principal, point):
    return lambda: browse.list_folder(principal, point, "documents", "")


def _download(principal, point):
    return lambda: browse.open_blob(principal, point, "documents", "dir0/file 0.bin")


def test_adls_point_data_access_per_persona(lab, adls_setup):
    _instance, point, _target = adls_setup
    outcomes = {key: (_outcome(_list(_who(lab, key), point)), _outcome(_download(_who(lab, key), point)))
                for key in ADLS_MATRIX}
    assert outcomes == ADLS_MATRIX


def test_the_operator_downloads_once_it_may_read_the_blob_live(lab, adls_setup):
    """GIVEN the Backup Operator, refused a download because it cannot read the blob live
    WHEN it gets Storage Blob Data Contributor on the source container
    THEN it downloads the blob's bytes; and a Reader with the same data role lists the files (live
    read) but still cannot download (no restore permission)."""
    instance, point, _target = adls_setup
    operator, reader = lab.personas["backup-operator"].principal, lab.personas["reader"].principal
    source = inv.container_resource_id(instance.datasource_resource_id, "documents")
    with pytest.raises(GuardDenied) as refused:
        _download(operator, point)()
    assert refused.value.decision.operation == inv.BLOB_READ
    assert "same right as reading it live" in refused.value.decision.remedy
    for who in (operator, reader):
        grant(lab, who, roles.STORAGE_BLOB_DATA_CONTRIBUTOR, source)
    handle = _download(operator, point)()
    try:
        from portal.inventory.models import StorageAccount

        account = StorageAccount.objects.get(resource_id=instance.datasource_resource_id)
        assert handle.read() == (account.data_path / "documents" / "dir0" / "file 0.bin").read_bytes()
    finally:
        handle.close()
    assert _outcome(_list(reader, point)) == A
    assert _outcome(_download(reader, point)) == D
    # The data role covers that container only: the other container's files stay closed to the reader.
    assert _outcome(lambda: browse.list_folder(reader, point, "images", "")) == D


def test_refusals_are_logged_and_explained(lab, adls_setup):
    _instance, point, _target = adls_setup
    reader = lab.personas["reader"].principal
    with pytest.raises(GuardDenied) as refused:
        _list(reader, point)()
    decision = refused.value.decision
    assert decision.code == "AuthorizationFailed" and "restore/action" in decision.reason
    assert "Storage Blob Data" in decision.remedy and "Backup Operator" in decision.remedy
    entry = ActivityLogEntry.objects.filter(principal=reader, status="Failed").latest("timestamp")
    assert entry.details["dataAccess"] == "Browse recovery point files" and entry.details["item"] == "documents"
    assert entry.details["recoveryPointId"] == str(point.pk)


def test_a_soft_deleted_instance_gives_no_data_even_to_the_owner(lab, vault, adls_setup, monkeypatch):
    """GIVEN an instance whose backup data was deleted (soft delete On): SoftDeleted, points kept
    WHEN the Owner lists or downloads
    THEN both are refused by the instance's state with its code and remedy (undelete), and logged;
    after undelete, both work again."""
    from protection.jobs import runner as jobs
    from protection.deletion import services as deletion

    instance, point, _target = adls_setup
    monkeypatch.setattr(jobs, "enqueue", lambda job: None)
    job = deletion.delete_backup_data(lab.trainer, instance, confirm_name=instance.name)
    jobs.run(job.pk)
    instance.refresh_from_db()
    assert instance.protection_state == ProtectionState.SOFT_DELETED
    point.refresh_from_db()
    for call in (_list(lab.trainer, point), _download(lab.trainer, point)):
        with pytest.raises(GuardDenied) as refused:
            call()
        assert refused.value.decision.guard == access.STATE_GUARD
        assert refused.value.decision.code == access.SOFT_DELETED_CODE
        assert "Undelete" in refused.value.decision.remedy
    assert ActivityLogEntry.objects.filter(principal=lab.trainer, status="Failed",
                                           details__code=access.SOFT_DELETED_CODE).count() == 2
    deletion.undelete(lab.trainer, instance)
    point.refresh_from_db()
    assert _outcome(_list(lab.trainer, point)) == A
    assert _outcome(_download(lab.trainer, point)) == A


@pytest.mark.parametrize("state", [ProtectionState.SOFT_DELETING, ProtectionState.CONFIGURING])
def test_other_states_that_forbid_restore_forbid_data_access(lab, adls_setup, state):
    instance, point, _target = adls_setup
    BackupInstance.objects.filter(pk=instance.pk).update(protection_state=state)
    point.instance.refresh_from_db()
    with pytest.raises(GuardDenied) as refused:
        _list(lab.trainer, point)()
    assert refused.value.decision.guard == access.STATE_GUARD


def test_a_download_is_logged_as_a_restore_of_that_blob(lab, adls_setup):
    _instance, point, _target = adls_setup
    _download(lab.trainer, point)().close()
    entry = ActivityLogEntry.objects.filter(principal=lab.trainer, details__download=True).get()
    assert entry.status == "Succeeded" and entry.details["blob"] == "dir0/file 0.bin"


# persona -> table of contents of a database in a PostgreSQL point (the restore permission, or the
# server's admin login: flexibleServers/write).
PG_MATRIX = {
    "trainer": A,
    "backup-admin": A,
    "backup-operator": A,
    "reader": D,
    "security-admin": D,
    "outsider": D,
}


def test_postgres_table_of_contents_per_persona(lab, vault, make_policy, inventory, pg_database):
    source = pg_database("sr_toc")
    inv.refresh_postgres_server(lab.trainer, inventory.server)
    instance = protect(lab, vault, make_policy(PG), inventory.server)
    point = backup(lab, instance)
    outcomes = {}
    for key in PG_MATRIX:
        try:
            toc = browse.table_of_contents(_who(lab, key), point, source)
        except GuardDenied:
            outcomes[key] = D
        else:
            assert any(e.kind == "TABLE" for e in toc.entries), toc.error
            outcomes[key] = A
    assert outcomes == PG_MATRIX
    # A Reader who is made Contributor on the server (its admin login) reads it live, so also from a backup.
    reader = lab.personas["reader"].principal
    grant(lab, reader, roles.CONTRIBUTOR, inventory.server.resource_id)
    assert browse.table_of_contents(reader, point, source).entries
