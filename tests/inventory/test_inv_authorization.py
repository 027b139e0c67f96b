"""Who may do what with inventory resources: literal tables, checked through the services and the
HTTP views. Outsiders get 404 for everything; readers read but change nothing (403 on writes)."""

import io

import pytest
from django.urls import reverse

from portal.inventory import services
from portal.inventory.models import Volume
from security.guards import GuardDenied

A, D = "allowed", "denied"

# persona -> operation -> outcome. Written from the built-in roles, not computed:
#  Owner (trainer, "/"), Contributor (lab RG), Reader (lab subscription),
#  Backup admin (Backup Contributor + RBAC Administrator on the lab RG: */read, no listKeys, no
#  data actions), Outsider (no role). Computing a checksum and testing a server's connection start work
#  (a job that reads the whole volume; a login with the server's admin credentials that rewrites what
#  Strongroom knows of it): they need volumes/write and flexibleServers/write, never a read-only role.
OPERATIONS = (
    "create storage account", "create container", "upload blob", "download blob", "delete blob",
    "create Elastic SAN", "create volume", "write sample data", "compute checksum", "create PostgreSQL server",
    "test connection", "delete storage account",
)
MATRIX = {who: dict(zip(OPERATIONS, row, strict=True)) for who, row in {
    #                create   create     upload  download  delete  create  create  write   compute   create  test  delete
    #                account  container  blob    blob      blob    ESAN    volume  sample  checksum  PG      conn  account
    "owner":        (A,       A,         A,      A,        A,      A,      A,      A,      A,        A,      A,    A),
    "contributor":  (A,       A,         A,      A,        A,      A,      A,      A,      A,        A,      A,    A),
    "reader":       (D,       D,         D,      D,        D,      D,      D,      D,      D,        D,      D,    D),
    "backup-admin": (D,       D,         D,      D,        D,      D,      D,      D,      D,        D,      D,    D),
    "outsider":     (D,       D,         D,      D,        D,      D,      D,      D,      D,        D,      D,    D),
}.items()}


@pytest.fixture
def world(lab, account, container, volume, monkeypatch):
    from portal.inventory import tasks

    monkeypatch.setattr(tasks.run_volume_job, "delay", lambda *a: None)
    services.upload_blobs(lab.trainer, container, [services.Upload("a.txt", io.BytesIO(b"a")), services.Upload("b.txt", io.BytesIO(b"b"))])
    # Nothing listens on port 1: a test connection fails at once, but is still an allowed operation.
    server = services.create_postgres_server(lab.trainer, resource_group=lab.lab_group, name="pg-authz", region=lab.region,
                                             host="127.0.0.1", port=1, admin_user="postgres")
    return {"lab": lab, "account": account, "container": container, "volume": volume, "server": server}


def _operations(w, p):
    lab, account, container, volume = w["lab"], w["account"], w["container"], w["volume"]
    rg, region = lab.lab_group, lab.region

    def checksum():
        services.start_volume_job(p, volume, Volume.Activity.COMPUTE_CHECKSUM)
        Volume.objects.filter(pk=volume.pk).update(activity_status="")  # let the next job start

    def sample():
        services.start_volume_job(p, volume, Volume.Activity.WRITE_SAMPLE_DATA)
        Volume.objects.filter(pk=volume.pk).update(activity_status="")

    return {
        "create storage account": lambda: services.create_storage_account(p, resource_group=rg, name="matrixacct", region=region),
        "create container": lambda: services.create_container(p, account, name="matrix"),
        "upload blob": lambda: services.upload_blobs(p, container, [services.Upload("m.txt", io.BytesIO(b"m"))]),
        "download blob": lambda: services.open_blob(p, container, "a.txt").close(),
        "delete blob": lambda: services.delete_blobs(p, container, ["b.txt"]),
        "create Elastic SAN": lambda: services.create_elastic_san(p, resource_group=rg, name="esan-matrix", region=region),
        "create volume": lambda: services.create_volume(p, volume.volume_group, name="vol-matrix", size_gib=1),
        "write sample data": sample,
        "compute checksum": checksum,
        "create PostgreSQL server": lambda: services.create_postgres_server(
            p, resource_group=rg, name="pg-matrix", region=region, host="127.0.0.1", admin_user="postgres"),
        "test connection": lambda: services.refresh_postgres_server(p, w["server"]),
        "delete storage account": lambda: services.delete_storage_account(p, account),
    }


def _principal(lab, contributor, who):
    return {"owner": lab.trainer, "contributor": contributor}.get(who) or lab.personas[who].principal


@pytest.mark.parametrize("who", list(MATRIX))
def test_the_authorization_matrix_holds_through_the_services(world, contributor, who):
    principal = _principal(world["lab"], contributor, who)
    outcomes = {}
    for name, call in _operations(world, principal).items():
        try:
            call()
        except GuardDenied:
            outcomes[name] = D
        else:
            outcomes[name] = A
    assert outcomes == MATRIX[who]


def _pages(w):
    return [
        reverse("portal:storage_account_detail", args=[w["account"].pk]),
        reverse("portal:storage_account_containers", args=[w["account"].pk]),
        reverse("portal:container_detail", args=[w["container"].pk]),
        reverse("portal:elastic_san_detail", args=[w["volume"].volume_group.elastic_san.pk]),
        reverse("portal:elastic_san_volume_groups", args=[w["volume"].volume_group.elastic_san.pk]),
        reverse("portal:elastic_san_volumes", args=[w["volume"].volume_group.elastic_san.pk]),
        reverse("portal:volume_group_detail", args=[w["volume"].volume_group.pk]),
        reverse("portal:volume_detail", args=[w["volume"].pk]),
    ]


def test_an_outsider_gets_404_for_every_inventory_page_and_sees_empty_lists(world, client):
    client.force_login(world["lab"].personas["outsider"].principal.user)
    for url in _pages(world):
        assert client.get(url).status_code == 404, url
    listing = client.get(reverse("portal:storage_account_list")).content.decode()
    assert world["account"].name not in listing and "No storage accounts to show" in listing
    download = reverse("portal:blob_download", args=[world["container"].pk]) + "?name=a.txt"
    assert client.get(download).status_code == 404


def test_a_reader_reads_every_page_but_every_write_is_403(world, client):
    reader = world["lab"].personas["reader"].principal
    client.force_login(reader.user)
    for url in _pages(world):
        assert client.get(url).status_code == 200, url
    account, container, volume = world["account"], world["container"], world["volume"]
    writes = [
        (reverse("portal:container_create", args=[account.pk]), {"name": "nope"}),
        (reverse("portal:container_upload", args=[container.pk]), {"files": io.BytesIO(b"x")}),
        (reverse("portal:blob_delete", args=[container.pk]), {"names": ["a.txt"]}),
        (reverse("portal:volume_write_sample_data", args=[volume.pk]), {}),
        (reverse("portal:volume_compute_checksum", args=[volume.pk]), {}),
        (reverse("portal:postgres_server_refresh", args=[world["server"].pk]), {}),
        (reverse("portal:storage_account_delete", args=[account.pk]), {"confirm_name": account.name}),
    ]
    for url, data in writes:
        response = client.post(url, data)
        assert response.status_code == 403, url
        assert "does not have authorization to perform action" in response.content.decode()
    download = reverse("portal:blob_download", args=[container.pk]) + "?name=a.txt"
    assert client.get(download).status_code == 403  # no data role, no listKeys: no blob data
    assert (container.path / "a.txt").exists() and (container.path / "b.txt").exists()


def test_a_contributor_uploads_downloads_and_deletes_through_the_pages(world, contributor, client):
    client.force_login(contributor.user)
    container = world["container"]
    up = reverse("portal:container_upload", args=[container.pk])
    first, second = io.BytesIO(b"one"), io.BytesIO("zwei".encode())
    first.name, second.name = "one.txt", "zweite Datei ü.txt"
    response = client.post(up, {"files": [first, second], "prefix": "in/box"})
    assert response.status_code == 302
    assert (container.path / "in" / "box" / "zweite Datei ü.txt").read_bytes() == b"zwei"
    listing = client.get(reverse("portal:container_detail", args=[container.pk]) + "?prefix=in/").content.decode()
    assert "zweite Datei ü.txt" in listing and "a.txt" not in listing
    download = client.get(reverse("portal:blob_download", args=[container.pk]), {"name": "in/box/zweite Datei ü.txt"})
    assert download.status_code == 200 and b"".join(download.streaming_content) == b"zwei"
    assert "attachment" in download["Content-Disposition"]
    bad = io.BytesIO(b"x")
    bad.name = "x.txt"
    refused = client.post(up, {"files": [bad], "prefix": "../../etc"})
    assert refused.status_code == 400 and "Path traversal is not allowed" in refused.content.decode()
    client.post(reverse("portal:blob_delete", args=[container.pk]), {"names": ["in/box/one.txt"]})
    assert not (container.path / "in" / "box" / "one.txt").exists()


def test_signed_out_visitors_are_sent_to_sign_in(world, client):
    response = client.get(reverse("portal:storage_account_list"))
    assert response.status_code == 302 and "/signin/" in response["Location"]


def test_blob_data_roles_work_without_keys_and_owners_use_the_access_key(world):
    """GIVEN a Reader who also holds Storage Blob Data Contributor on one container, and the Owner
    WHEN each uploads a blob
    THEN the reader's upload is authorized by the data action (logged as 'Write blob'), the Owner's
    by listing the account keys (logged as 'List Storage Account Keys', as the Azure portal does)."""
    from security import roles
    from security import services as security_services
    from security.models import ActivityLogEntry, RoleDefinition

    lab, container = world["lab"], world["container"]
    reader = lab.personas["reader"].principal
    security_services.assign_role(
        lab.trainer, assignee=reader, role=RoleDefinition.objects.get(name=roles.STORAGE_BLOB_DATA_CONTRIBUTOR),
        scope=container.resource_id,
    )
    services.upload_blobs(reader, container, [services.Upload("by-reader.txt", io.BytesIO(b"r"))])
    services.upload_blobs(lab.trainer, container, [services.Upload("by-owner.txt", io.BytesIO(b"o"))])
    by_reader = ActivityLogEntry.objects.filter(principal=reader, status="Succeeded").latest("timestamp")
    by_owner = ActivityLogEntry.objects.filter(principal=lab.trainer, details__blobs=["by-owner.txt"]).get()
    assert (by_reader.operation, by_reader.details["authenticationMethod"]) == (services.BLOB_WRITE, "Microsoft Entra user account")
    assert (by_owner.operation, by_owner.details["authenticationMethod"]) == (services.STORAGE_ACCOUNT_LIST_KEYS, "Access key")
    assert by_owner.operation_name == "List Storage Account Keys"
    other = services.create_container(lab.trainer, world["account"], name="other")
    with pytest.raises(GuardDenied):  # the data role covers its container only
        services.upload_blobs(reader, other, [services.Upload("x.txt", io.BytesIO(b"x"))])
