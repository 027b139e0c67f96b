"""The token endpoint (Entra ID's client credentials grant) and the tokens it issues."""

import base64
import datetime as dt
import uuid

import jwt
import pytest
from django.test import Client

from portal.api import API_VERSION, tokens
from security import applications, clock, signin
from security.models import ActivityLogEntry, ClientSecret
from security.operations import SERVICE_PRINCIPAL_SIGN_IN

pytestmark = pytest.mark.django_db
ARM_SCOPE = "https://management.azure.com/.default"


@pytest.fixture
def app(lab):
    return applications.create_application(lab.trainer, f"token-test-{uuid.uuid4().hex[:6]}")


@pytest.fixture
def secret(lab, app):
    return applications.add_client_secret(lab.trainer, app, description="ci")


def _token_url(tenant=None):
    return f"/{tenant or tokens.tenant_id()}/oauth2/v2.0/token"


def _ask(client_id, value, *, scope=ARM_SCOPE, grant="client_credentials", tenant=None, client=None, **extra):
    data = {"grant_type": grant, "client_id": str(client_id), "client_secret": value, "scope": scope}
    data.update(extra)
    return (client or Client(enforce_csrf_checks=True)).post(_token_url(tenant), {k: v for k, v in data.items() if v is not None})


def _arm_get(token):
    path = f"/subscriptions/{uuid.uuid4()}/providers/Microsoft.DataProtection/locations/eastus/operationStatus/{uuid.uuid4()}"
    return Client().get(f"{path}?api-version={API_VERSION}", HTTP_AUTHORIZATION=f"Bearer {token}")


def _failures():
    return ActivityLogEntry.objects.filter(operation=SERVICE_PRINCIPAL_SIGN_IN, status="Failed")


def test_openid_configuration_names_the_token_endpoint(client):
    tenant = tokens.tenant_id()
    document = client.get(f"/{tenant}/v2.0/.well-known/openid-configuration").json()
    assert document["token_endpoint"] == f"http://testserver/{tenant}/oauth2/v2.0/token"
    assert document["issuer"] == tokens.issuer()
    assert client.get(f"/{tenant}/discovery/v2.0/keys").json() == {"keys": []}
    wrong = client.get(f"/{uuid.uuid4()}/v2.0/.well-known/openid-configuration")
    assert wrong.status_code == 400 and wrong.json()["error_description"].startswith("AADSTS90002")


def test_a_good_secret_gets_a_token_for_the_service_principal_without_csrf(app, secret):
    row, value = secret
    response = _ask(app.client_id, value)  # a client enforcing CSRF checks, with no cookie or token: not blocked
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == body["ext_expires_in"] == 3600
    assert response["Cache-Control"].startswith("no-store") or "no-store" in response["Cache-Control"]
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["oid"] == str(app.principal_id) and claims["appid"] == str(app.client_id) and claims["sid"] == str(row.pk)
    assert tokens.principal_for(body["access_token"]) == app.principal
    assert _arm_get(body["access_token"]).status_code == 404  # authenticated; the operation does not exist
    entry = ActivityLogEntry.objects.get(operation=SERVICE_PRINCIPAL_SIGN_IN, status="Succeeded")
    assert entry.principal_ref == str(app.principal_id) and entry.details["secretId"] == str(row.pk)
    assert value not in str(entry.details) and value not in entry.message


def test_client_secret_basic_is_accepted(app, secret):
    _, value = secret
    basic = base64.b64encode(f"{app.client_id}:{value}".encode()).decode()
    response = Client().post(_token_url(), {"grant_type": "client_credentials", "scope": ARM_SCOPE},
                             HTTP_AUTHORIZATION=f"Basic {basic}")
    assert response.status_code == 200, response.content


def _error(response):
    body = response.json()
    return response.status_code, body["error"], body["error_description"].split(":", 1)[0]


def test_a_wrong_secret_is_invalid_client_and_logged_without_the_secret(app, secret):
    response = _ask(app.client_id, "not-the-secret-value")
    assert _error(response) == (401, "invalid_client", "AADSTS7000215")
    body = response.json()
    assert body["error_codes"] == [7000215] and body["trace_id"] and body["correlation_id"]
    entry = _failures().get()
    assert entry.principal_ref == str(app.principal_id) and entry.details["errorCode"] == "AADSTS7000215"
    assert "not-the-secret-value" not in str(entry.details) + entry.message


def test_an_unknown_client_is_unauthorized_client(db, lab):
    unknown = uuid.uuid4()
    assert _error(_ask(unknown, "whatever")) == (400, "unauthorized_client", "AADSTS700016")
    assert _error(_ask("not-a-uuid", "whatever")) == (400, "unauthorized_client", "AADSTS700016")
    entry = _failures().filter(details__clientId=str(unknown)).get()
    assert entry.principal_ref == "" and entry.details["knownApplication"] is False


def test_an_expired_secret_is_refused_and_its_tokens_stop_working(app, secret):
    row, value = secret
    token = _ask(app.client_id, value).json()["access_token"]
    ClientSecret.objects.filter(pk=row.pk).update(expires_at=clock.now() - dt.timedelta(minutes=1))
    assert _error(_ask(app.client_id, value)) == (401, "invalid_client", "AADSTS7000222")
    refused = _arm_get(token)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert "expired" in refused.json()["error"]["message"]


def test_a_removed_secret_is_refused_and_its_tokens_are_revoked(lab, app, secret):
    row, value = secret
    token = _ask(app.client_id, value).json()["access_token"]
    assert _arm_get(token).status_code == 404
    applications.remove_client_secret(lab.trainer, row)
    assert _error(_ask(app.client_id, value)) == (401, "invalid_client", "AADSTS7000215")
    refused = _arm_get(token)
    assert refused.status_code == 401 and "removed" in refused.json()["error"]["message"]


def test_deleting_the_app_or_disabling_its_principal_revokes_its_tokens(lab, app, secret):
    _, value = secret
    token = _ask(app.client_id, value).json()["access_token"]
    app.principal.enabled = False
    app.principal.save(update_fields=["enabled"])
    assert _arm_get(token).status_code == 401
    assert _error(_ask(app.client_id, value))[2] == "AADSTS7000112"
    app.principal.enabled = True
    app.principal.save(update_fields=["enabled"])
    assert _arm_get(token).status_code == 404
    applications.delete_application(lab.trainer, app)
    assert _arm_get(token).status_code == 401
    assert _error(_ask(app.client_id, value))[2] == "AADSTS700016"


def test_a_token_of_a_service_principal_without_its_secret_claim_is_refused(app):
    token, _ = tokens.issue(app.principal)
    assert _arm_get(token).status_code == 401


@pytest.mark.parametrize("change, expected", [
    ({"grant": "password"}, (400, "unsupported_grant_type", "AADSTS70003")),
    ({"grant": None}, (400, "invalid_request", "AADSTS900144")),
    ({"scope": ""}, (400, "invalid_request", "AADSTS900144")),
    ({"scope": "https://management.azure.com/user_impersonation"}, (400, "invalid_scope", "AADSTS1002012")),
    ({"scope": "https://graph.microsoft.com/.default"}, (400, "invalid_resource", "AADSTS500011")),
    ({"tenant": str(uuid.uuid4())}, (400, "invalid_request", "AADSTS90002")),
])
def test_bad_requests_get_entra_errors(app, secret, change, expected):
    _, value = secret
    assert _error(_ask(app.client_id, value, **change)) == expected


def test_missing_client_id_or_secret(app):
    assert _error(_ask("", "x"))[2] == "AADSTS900144"
    assert _error(_ask(app.client_id, ""))[2] == "AADSTS7000218"


def test_the_management_core_scope_is_accepted_and_get_is_not(app, secret, client):
    _, value = secret
    assert _ask(app.client_id, value, scope="https://management.core.windows.net//.default").status_code == 200
    assert client.get(_token_url()).status_code == 405


def test_wrong_secrets_lock_the_client_id_at_its_address_like_sign_in(settings, lab, app, secret):
    settings.AXES_FAILURE_LIMIT = 3
    _, value = secret
    for _ in range(3):
        assert _error(_ask(app.client_id, "wrong"))[2] == "AADSTS7000215"
    locked = _ask(app.client_id, value)  # the right secret, but locked: not even checked
    assert _error(locked) == (401, "invalid_client", "AADSTS50053")
    assert "Sign-in lockouts" in locked.json()["error_description"]
    assert locked["Content-Type"] == "application/json"  # Entra's JSON, not the sign-in lockout page
    lockouts = signin.current_lockouts()
    assert [(lo.username, lo.ip_address) for lo in lockouts] == [(str(app.client_id), "127.0.0.1")]
    owner = Client()
    owner.force_login(lab.trainer.user)
    page = owner.get("/signin-lockouts/").content.decode()
    assert ">Username or client ID</th>" in page and str(app.client_id) in page
    assert "operation=Service+principal+sign-in&amp;status=Failed" in page
    entries = list(_failures().order_by("id"))
    assert [e.details["errorCode"] for e in entries] == ["AADSTS7000215"] * 3 + ["AADSTS50053"]
    assert entries[2].details.get("lockedOut") and entries[3].sub_status == "TooManyRequests"
    # Another address still gets in; an Owner's unlock lifts it here.
    assert _ask(app.client_id, value, client=Client(REMOTE_ADDR="10.1.2.3")).status_code == 200
    signin.unlock_sign_in(lab.trainer, username=str(app.client_id), ip_address="127.0.0.1")
    assert _ask(app.client_id, value).status_code == 200


def test_the_secret_is_not_kept_in_axes_records(settings, app, secret):
    from axes.models import AccessAttempt

    _ask(app.client_id, "a-wrong-secret-value")
    assert "a-wrong-secret-value" not in str(list(AccessAttempt.objects.values()))


def test_a_client_id_with_control_characters_is_refused_counted_and_logged_not_a_500(app, secret):
    row, value = secret
    for client_id in ("\x00", f"{app.client_id}\x00", "a\x07b"):
        response = _ask(client_id, value)
        assert response.status_code in (400, 401), response.content
        assert response.json()["error"] in ("unauthorized_client", "invalid_client")
    assert _failures().count() == 3


def test_an_unexpected_failure_reports_no_client_secret(monkeypatch, app, secret):
    """Should the endpoint ever fail, Django's error report (mail to ADMINS, the log) masks the secret."""
    from django.views.debug import SafeExceptionReporterFilter

    row, value = secret
    seen = {}

    def broken(request, *args, **kwargs):
        seen["post"] = SafeExceptionReporterFilter().get_post_parameters(request)
        raise RuntimeError("boom")

    monkeypatch.setattr("portal.api.identity.sign_in", broken)
    response = _ask(app.client_id, value, client=Client(raise_request_exception=False))
    assert response.status_code == 500
    assert seen["post"]["client_secret"] != value and value not in str(seen["post"])
