"""End to end over real TLS: azure-identity's ClientSecretCredential gets a token from Strongroom's token
endpoint, and Microsoft's DataProtectionMgmtClient uses it against the API (verifying Strongroom's CA)."""

import uuid

import pytest

from portal.api import tokens
from security import applications, roles
from security import services as security_services
from security.models import RoleDefinition


@pytest.fixture
def app_with_secret(lab):
    app = applications.create_application(lab.trainer, f"tls-e2e-{uuid.uuid4().hex[:6]}")
    secret, value = applications.add_client_secret(lab.trainer, app, description="e2e")
    security_services.assign_role(lab.trainer, assignee=app.principal,
                                  role=RoleDefinition.objects.get(name=roles.BACKUP_READER),
                                  scope=lab.lab_subscription.resource_id)
    return app, value


def test_client_secret_credential_and_the_sdk_over_tls(tls_live_server, lab, app_with_secret):
    from azure.core.exceptions import HttpResponseError
    from azure.core.rest import HttpRequest
    from azure.identity import ClientSecretCredential
    from azure.mgmt.dataprotection import DataProtectionMgmtClient

    app, value = app_with_secret
    credential = ClientSecretCredential(
        tokens.tenant_id(), str(app.client_id), value, authority=tls_live_server.url,
        disable_instance_discovery=True, connection_verify=tls_live_server.ca,
    )
    token = credential.get_token("https://management.azure.com/.default")
    assert tokens.principal_for(token.token) == app.principal
    client = DataProtectionMgmtClient(credential, lab.lab_subscription.subscription_id,
                                      base_url=tls_live_server.url, connection_verify=tls_live_server.ca,
                                      retry_total=0)
    path = (f"/subscriptions/{lab.lab_subscription.subscription_id}/providers/Microsoft.DataProtection/"
            f"locations/eastus/operationStatus/{uuid.uuid4()}")
    with client, credential:  # closed after: no kept-alive connection holds a server thread (and its database session)
        response = client._client.send_request(HttpRequest("GET", f"{tls_live_server.url}{path}?api-version=2026-06-01"))
    assert response.status_code == 404, response.text()  # authenticated (a 401 otherwise), then not found
    with pytest.raises(HttpResponseError) as raised:
        response.raise_for_status()
    assert raised.value.error.code == "ResourceNotFound"  # ARM's error, parsed by the SDK
