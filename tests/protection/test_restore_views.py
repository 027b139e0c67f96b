"""Restore pages: the wizard end to end through the test client, Validate and Assign missing roles,
recovery point pages (browse, download, table of contents, Verify), and who may do what."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.inventory import services as inv
from protection.jobs import runner as jobs
from protection.models import Job
from protection.restores import services, targets
from security.models import RoleAssignment
from tests.protection._restore_fixtures import (  # noqa: F401
    adls_setup, adls_target, backup, filled, inventory, make_policy, new_account, protect,
    restore_and_run, tree_of, vault,
)

pytestmark = pytest.mark.django_db


def wizard_post(client, step, data=None, goto=None):
    body = {"restore-current_step": step, **(data or {})}
    if goto:
        body["wizard_goto_step"] = goto
    return client.post(reverse("protection:restore_wizard"), body)


def test_wizard_restores_a_container_account_end_to_end(lab, adls_setup, signed_in_client):
    instance, point, target_account = adls_setup
    client = signed_in_client(lab.trainer)
    page = client.get(f"{reverse('protection:restore_wizard')}?instance={instance.pk}")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Select recovery point" in html and f'value="{point.pk}" id="rp-{point.pk}" checked' in html
    page = wizard_post(client, "point", {"point-recovery_point": str(point.pk)})
    html = page.content.decode()
    assert "Restore parameters" in html and "Target storage account" in html and "Validate" in html
    params = {"parameters-restore_option": "all", "parameters-target_subscription": str(lab.lab_subscription.pk),
              "parameters-target_storage_account": target_account.resource_id}
    # Validate: the identity lacks the role; Assign missing roles fixes it.
    pane = client.post(reverse("protection:restore_validate"),
                       {**params, "instance": str(instance.pk), "point": str(point.pk)})
    assert pane.status_code == 200 and "Storage Account Backup Contributor" in pane.content.decode()
    assert 'id="assign-missing-roles"' in pane.content.decode()
    pane = client.post(reverse("protection:restore_assign_roles"),
                       {**params, "scope": "Resource", "instance": str(instance.pk), "point": str(point.pk)})
    assert "Validation successful" in pane.content.decode(), pane.content.decode()
    assert RoleAssignment.objects.filter(principal=instance.vault.identity, scope__iexact=target_account.resource_id).exists()
    page = wizard_post(client, "parameters", params)
    html = page.content.decode()
    assert "Validation passed" in html and target_account.name in html, html[-3000:]
    response = wizard_post(client, "review")
    assert response.status_code == 302
    job = Job.objects.get(operation="Restore")
    assert response["Location"] == reverse("protection:job_detail", args=[job.pk])
    jobs.run(job.pk)
    job.refresh_from_db()
    assert job.status == "Completed", job.error_message
    page = client.get(reverse("protection:job_detail", args=[job.pk]))
    html = page.content.decode()
    assert "Restore summary" in html and "Go to Container documents" in html


def test_wizard_shows_codes_beside_fields(lab, adls_setup, signed_in_client):
    instance, point, _target = adls_setup
    client = signed_in_client(lab.trainer)
    client.get(f"{reverse('protection:restore_wizard')}?instance={instance.pk}&point={point.pk}")
    page = wizard_post(client, "parameters", {
        "parameters-restore_option": "all", "parameters-target_subscription": str(lab.lab_subscription.pk),
        "parameters-target_storage_account": instance.datasource_resource_id})
    assert "UserErrorOriginalLocationRestoreNotSupported" in page.content.decode()


def test_recover_from_home_presets_the_type(lab, adls_setup, signed_in_client):
    client = signed_in_client(lab.trainer)
    assert 'id="recover"' in client.get(reverse("portal:home")).content.decode()
    response = client.post(reverse("protection:restore_start"), {"datasource_type": "Microsoft.Storage/storageAccounts/adlsBlobServices",
                                                                  "solution": "AzureBackup"})
    assert response.status_code == 302 and response["Location"].endswith("?type=adls")
    page = client.get(response["Location"])
    assert adls_setup[0].name in page.content.decode()


def test_recovery_point_pages_browse_download(lab, adls_setup, signed_in_client):
    instance, point, _target = adls_setup
    client = signed_in_client(lab.trainer)
    page = client.get(reverse("protection:recovery_point_detail", args=[point.pk]))
    assert page.status_code == 200 and "documents" in page.content.decode()
    page = client.get(reverse("protection:recovery_point_browse", args=[point.pk]), {"container": "documents"})
    html = page.content.decode()
    assert "dir0/" in html and "résumé café.txt" in html
    page = client.get(reverse("protection:recovery_point_browse", args=[point.pk]), {"container": "documents", "path": "dir0"})
    assert "file 0.bin" in page.content.decode()
    response = client.get(reverse("protection:recovery_point_download", args=[point.pk]),
                          {"container": "documents", "path": "dir0/file 0.bin"})
    assert response.status_code == 200
    from portal.inventory.models import StorageAccount

    source = StorageAccount.objects.get(resource_id=instance.datasource_resource_id)
    assert b"".join(response.streaming_content) == (source.data_path / "documents" / "dir0" / "file 0.bin").read_bytes()
    for bad in ("../../etc/passwd", "dir0/../../x", "/etc/passwd"):
        assert client.get(reverse("protection:recovery_point_download", args=[point.pk]),
                          {"container": "documents", "path": bad}).status_code == 404
    assert client.get(reverse("protection:recovery_point_browse", args=[point.pk]),
                      {"container": "documents", "path": "../.."}).status_code == 404


def test_verify_button_and_job_result(lab, adls_setup, signed_in_client):
    _instance, point, _target = adls_setup
    client = signed_in_client(lab.trainer)
    response = client.post(reverse("protection:recovery_point_verify", args=[point.pk]))
    job = Job.objects.get(operation="Verify")
    assert response.status_code == 302 and response["Location"] == reverse("protection:job_detail", args=[job.pk])
    jobs.run(job.pk)
    page = client.get(reverse("protection:job_detail", args=[job.pk]))
    assert "Verify result" in page.content.decode() and "Healthy" in page.content.decode()
    assert "Healthy" in client.get(reverse("protection:recovery_point_detail", args=[point.pk])).content.decode()


# Authorization matrix: (persona, page, expected status). Browsing a point's files is data access: the
# restore permission or the live blob read; downloading needs both (see protection/restores/access.py).
MATRIX = [
    ("outsider", "detail", 404),
    ("outsider", "browse", 404),
    ("outsider", "download", 404),
    ("outsider", "verify", 404),
    ("reader", "detail", 200),
    ("reader", "browse", 403),
    ("reader", "verify", 403),
    ("reader", "download", 403),
    ("backup-operator", "browse", 200),
    ("backup-operator", "verify", 302),
    ("backup-operator", "download", 403),  # it cannot read the blob live, so not from a backup either
    ("backup-admin", "browse", 200),
    ("backup-admin", "download", 403),
    ("trainer", "download", 200),
]


def _who(lab, persona):
    return lab.trainer if persona == "trainer" else lab.personas[persona].principal


def _point_urls(point):
    return {
        "detail": ("get", reverse("protection:recovery_point_detail", args=[point.pk]), {}),
        "browse": ("get", reverse("protection:recovery_point_browse", args=[point.pk]), {"container": "documents"}),
        "verify": ("post", reverse("protection:recovery_point_verify", args=[point.pk]), {}),
        "download": ("get", reverse("protection:recovery_point_download", args=[point.pk]),
                     {"container": "documents", "path": "dir0/file 0.bin"}),
    }


def test_authorization_matrix(lab, adls_setup, signed_in_client):
    _instance, point, _target = adls_setup
    # The lab's personas: the reader holds Reader, the operator Backup Operator (and Reader) on the lab group.
    got = {}
    for persona, page, _expected in MATRIX:
        client = signed_in_client(_who(lab, persona))
        method, url, data = _point_urls(point)[page]
        response = getattr(client, method)(url, data)
        got[(persona, page)] = response.status_code
        if response.status_code == 403:
            assert b"does not have authorization to perform action" in response.content
    assert got == {(persona, page): expected for persona, page, expected in MATRIX}


def test_denied_pages_explain_and_links_are_disabled(lab, adls_setup, signed_in_client):
    """The Reader sees the point and its containers, but no link into their files; the browse URL answers
    the explained denial naming both ways in. The operator's browse page shows Download disabled with
    the reason."""
    _instance, point, _target = adls_setup
    client = signed_in_client(lab.personas["reader"].principal)
    html = client.get(reverse("protection:recovery_point_detail", args=[point.pk])).content.decode()
    assert 'data-browse-denied="documents"' in html and 'id="browse-denied"' in html
    assert "recovery-points/%s/browse/?container=documents" % point.pk not in html
    denied = client.get(reverse("protection:recovery_point_browse", args=[point.pk]), {"container": "documents"})
    text = denied.content.decode()
    assert denied.status_code == 403 and "have permission to do this" in text
    assert "backupInstances/restore/action" in text and "Storage Blob Data" in text
    client = signed_in_client(lab.personas["backup-operator"].principal)
    html = client.get(reverse("protection:recovery_point_browse", args=[point.pk]),
                      {"container": "documents", "path": "dir0"}).content.decode()
    assert "file 0.bin" in html and 'aria-disabled="true" title="The client' in html
    assert reverse("protection:recovery_point_download", args=[point.pk]) not in html


def test_a_soft_deleted_instance_answers_409_with_the_reason(lab, adls_setup, signed_in_client, monkeypatch):
    from protection.deletion import services as deletion

    instance, point, _target = adls_setup
    monkeypatch.setattr(jobs, "enqueue", lambda job: None)
    jobs.run(deletion.delete_backup_data(lab.trainer, instance, confirm_name=instance.name).pk)
    client = signed_in_client(lab.trainer)
    for page in ("browse", "download"):
        method, url, data = _point_urls(point)[page]
        response = getattr(client, method)(url, data)
        text = response.content.decode()
        assert response.status_code == 409, page
        assert "UserErrorBackupInstanceSoftDeleted" in text and "Backup instance state" in text and "Undelete" in text
    html = client.get(reverse("protection:recovery_point_detail", args=[point.pk])).content.decode()
    assert 'id="browse-denied"' in html and "soft deleted" in html
    assert 'id="restore-from-point"' not in html  # no Restore offered either


def test_outsider_cannot_validate_or_see_the_wizard_instance(lab, adls_setup, signed_in_client, outsider):
    instance, point, target_account = adls_setup
    client = signed_in_client(outsider)
    response = client.post(reverse("protection:restore_validate"),
                           {"instance": str(instance.pk), "point": str(point.pk)})
    assert response.status_code == 404
    page = client.get(f"{reverse('protection:restore_wizard')}?instance={instance.pk}")
    assert instance.name not in page.content.decode()


def test_database_table_of_contents_page(lab, vault, make_policy, inventory, signed_in_client, pg_login):
    from tests.protection._restore_fixtures import PG, pg_database  # noqa: F401

    pytest.importorskip("psycopg")
    from portal.inventory import postgres as pg

    if not pg.test_connection(pg.ConnectionParams("127.0.0.1", 5432, "postgres")).ok:
        pytest.skip("no PostgreSQL")
    import secrets

    name = f"sr_rtoc_{secrets.token_hex(4)}"
    params = pg_login.params  # the server's login makes it, so it may read (and back up) it
    pg.create_database(params, name)
    try:
        pg.load_sample_schema(params.with_database(name), seed=3)
        inv.refresh_postgres_server(lab.trainer, inventory.server)
        instance = protect(lab, vault, make_policy(PG), inventory.server)
        point = backup(lab, instance)
        client = signed_in_client(lab.trainer)
        page = client.get(reverse("protection:recovery_point_toc", args=[point.pk, name]))
        html = page.content.decode()
        assert page.status_code == 200 and "TABLE DATA" in html and "customers" in html and "sales" in html
        # A Reader sees the point and the database's name, but not what the database holds.
        client = signed_in_client(lab.personas["reader"].principal)
        html = client.get(reverse("protection:recovery_point_detail", args=[point.pk])).content.decode()
        assert name in html and 'id="toc-denied"' in html
        assert reverse("protection:recovery_point_toc", args=[point.pk, name]) not in html
        page = client.get(reverse("protection:recovery_point_toc", args=[point.pk, name]))
        assert page.status_code == 403 and "customers" not in page.content.decode()
        assert "backupInstances/restore/action" in page.content.decode()
    finally:
        pg.drop_database(pg_login.admin, name)
