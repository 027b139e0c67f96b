"""The ARM plumbing: api-version, bearer tokens, the error envelope, long-running operations."""

import datetime as dt
import uuid

import jwt
import time_machine
import pytest

from portal.api import API_VERSION, lro, tokens
from portal.models import AsyncOperation

pytestmark = pytest.mark.django_db

STATUS = "/subscriptions/{sub}/providers/Microsoft.DataProtection/locations/eastus/operationStatus/{op}"


def _status_path(sub, op):
    return STATUS.format(sub=sub, op=op)


def test_missing_and_unsupported_api_version_name_the_supported_one(arm, backup_admin):
    client = arm(backup_admin)
    missing = client.get(_status_path(uuid.uuid4(), uuid.uuid4()), api_version=None)
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "MissingApiVersionParameter"
    assert API_VERSION in missing.json()["error"]["message"]
    wrong = client.get(_status_path(uuid.uuid4(), uuid.uuid4()), api_version="2021-01-01")
    assert wrong.status_code == 400
    error = wrong.json()["error"]
    assert error["code"] == "InvalidApiVersionParameter"
    assert "'2021-01-01' is invalid" in error["message"] and API_VERSION in error["message"]


def test_no_token_is_401_and_a_session_cookie_is_not_a_credential(client, signed_in_client, backup_admin):
    path = _status_path(uuid.uuid4(), uuid.uuid4()) + f"?api-version={API_VERSION}"
    assert client.get(path).json()["error"]["code"] == "AuthenticationFailed"
    response = signed_in_client(backup_admin).get(path)
    assert response.status_code == 401


@pytest.mark.parametrize("problem", ["expired", "wrong key", "malformed", "disabled", "unknown principal"])
def test_bad_tokens_get_invalid_authentication_token(request, client, backup_admin, problem):
    if problem == "expired":  # issued at a fixed moment; checked an hour past its lifetime (wall time, frozen)
        issued = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)
        token, _ = tokens.issue(backup_admin, now=issued)
        stack = time_machine.travel(issued + dt.timedelta(hours=2), tick=False)
        stack.start()
        request.addfinalizer(stack.stop)
    elif problem == "wrong key":
        good, _ = tokens.issue(backup_admin)
        claims = jwt.decode(good, options={"verify_signature": False})
        token = jwt.encode(claims, b"not-the-installation-key-0123456789abcdef", algorithm="HS256")
    elif problem == "malformed":
        token = "not.a.token"
    elif problem == "disabled":
        token, _ = tokens.issue(backup_admin)
        backup_admin.enabled = False
        backup_admin.save(update_fields=["enabled"])
    else:
        good, _ = tokens.issue(backup_admin)
        claims = jwt.decode(good, options={"verify_signature": False}) | {"oid": str(uuid.uuid4())}
        token = jwt.encode(claims, tokens._key(), algorithm="HS256")
    response = client.get(
        _status_path(uuid.uuid4(), uuid.uuid4()) + f"?api-version={API_VERSION}", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert "Bearer" in response["WWW-Authenticate"]


class _Request:
    def __init__(self, principal):
        self.auth = principal


def test_operation_status_follows_the_operation_and_is_private_to_its_caller(arm, backup_admin, reader, lab):
    sub = uuid.uuid4()
    resource = f"/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/v"
    op = lro.start(_Request(backup_admin), kind="Microsoft.DataProtection/backupVaults/write", resource_id=resource, location="eastus")
    client = arm(backup_admin)
    in_progress = client.get(_status_path(sub, op.id))
    body = in_progress.json()
    assert body["status"] == "InProgress" and body["name"] == str(op.id)
    assert in_progress["Retry-After"] == "1"  # the SDK polls again after a second, not its default 30
    result = client.get(_status_path(sub, op.id).replace("operationStatus", "operationResults"))
    assert result.status_code == 202 and "api-version=" in result["Location"]
    lro.fail(op, "UserErrorSomething", "It went wrong.")
    body = client.get(_status_path(sub, op.id)).json()
    assert body["status"] == "Failed" and body["error"] == {"code": "UserErrorSomething", "message": "It went wrong."}
    assert arm(reader).get(_status_path(sub, op.id)).status_code == 404


def test_job_following_operation_takes_the_jobs_outcome(arm, backup_admin, monkeypatch):
    outcomes = {}
    monkeypatch.setattr(lro, "_job_outcome", [lambda job_id: outcomes.get(job_id)])
    sub = uuid.uuid4()
    op = lro.start(_Request(backup_admin), kind="x/backup/action", resource_id=f"/subscriptions/{sub}/resourceGroups/r", location="eastus", job_id="job-1")
    client = arm(backup_admin)
    assert client.get(_status_path(sub, op.id)).json()["status"] == "InProgress"
    outcomes["job-1"] = lro.JobOutcome(True, "job-1")
    assert client.get(_status_path(sub, op.id)).json()["status"] == "Succeeded"
    result = client.get(_status_path(sub, op.id).replace("operationStatus", "operationResults"))
    assert result.status_code == 200
    assert result.json() == {"objectType": "OperationJobExtendedInfo", "jobId": "job-1"}
    assert AsyncOperation.objects.get(pk=op.id).ended_at is not None


@pytest.mark.django_db(transaction=True)
def test_the_sdks_operation_groups_read_every_finished_operation(backup_admin, sdk_client):
    """``operation_status.get`` and ``operation_result.get`` (the SDK declares 200 or 202 for a result, never
    204): an operation that finished without a result (stopProtection, a delete) reads as an
    OperationJobExtendedInfo naming no job, one that ran a job names it."""
    from azure.mgmt.dataprotection import models

    sub = uuid.uuid4()
    client = sdk_client(backup_admin, sub)
    start = lambda **kw: lro.start(_Request(backup_admin), kind="x/stopProtection/action",  # noqa: E731
                                   resource_id=f"/subscriptions/{sub}/resourceGroups/r", location="eastus", **kw)
    bare = lro.succeed(start())
    with_job = lro.succeed(start(), {"objectType": "OperationJobExtendedInfo", "jobId": "job-1"})
    assert client.operation_status.get("eastus", str(bare.id)).status == "Succeeded"
    result = client.operation_result.get(str(bare.id), "eastus")
    assert isinstance(result, models.OperationJobExtendedInfo) and result.job_id is None
    assert result.as_dict() == {"objectType": "OperationJobExtendedInfo"}
    assert client.operation_result.get(str(with_job.id), "eastus").job_id == "job-1"


def test_malformed_operation_id_is_404_not_500(arm, backup_admin):
    response = arm(backup_admin).get(_status_path(uuid.uuid4(), "not-a-uuid"))
    assert response.status_code == 404 and response.json()["error"]["code"] == "ResourceNotFound"


def test_a_nul_character_in_a_name_is_a_400_not_a_500(arm, lab):
    """PostgreSQL refuses NUL in text (DataError): a name in the path or a value in the body carrying one is
    the request's fault."""
    group = lab.lab_group
    base = f"{group.resource_id}/providers/Microsoft.DataProtection/backupVaults"
    client = arm(lab.trainer)
    for response in (client.get(f"{base}/bv%00x"), client.get(f"{base}/bv%00x/backupPolicies/p%00"),
                     client.put(f"{base}/bv-nul", {"location": "eastus\u0000", "properties": {}})):
        assert response.status_code == 400, response.content
        assert response.json()["error"]["code"] == "InvalidRequestContent"
