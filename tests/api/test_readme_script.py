"""The README's "Automate with the Azure SDK" script, run as a user runs it: a separate Python process
with only the SDK, over TLS against Strongroom's CA, signing in as a service principal with a client
secret, while a Celery worker runs the jobs. It must create the vault, give its identity its role,
create the policy, protect the account, back it up and list the recovery point."""

import io
import os
import re
import subprocess
import sys
import uuid

import pytest

from portal.api import tokens
from portal.inventory import services as inv
from protection.models import BackupInstance, Job, JobOperation, JobStatus, RecoveryPoint
from security import applications, roles
from security import services as security_services
from security.models import ActivityLogEntry, RoleDefinition
from tests.conftest import ROOT

pytestmark = [pytest.mark.celery]


def readme_script() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- sdk-script:start.*?-->\n```python\n(.*?)```\n<!-- sdk-script:end -->", text, re.S)
    assert match, "README.md lost its SDK script markers"
    return match.group(1)


@pytest.fixture
def automation_app(lab):
    app = applications.create_application(lab.trainer, f"readme-{uuid.uuid4().hex[:6]}")
    _, secret = applications.add_client_secret(lab.trainer, app, description="README script")
    for role in (roles.BACKUP_CONTRIBUTOR, roles.RBAC_ADMINISTRATOR):
        security_services.assign_role(lab.trainer, assignee=app.principal, role=RoleDefinition.objects.get(name=role),
                                      scope=lab.lab_group.resource_id)
    return app, secret


def test_the_readme_script_backs_up_an_account_through_the_sdk(tls_live_server, worker, lab, automation_app, tmp_path):
    app, secret = automation_app
    account = inv.create_storage_account(lab.trainer, resource_group=lab.lab_group, name=f"sareadme{uuid.uuid4().hex[:6]}",
                                         region=lab.region, hierarchical_namespace=True)
    container = inv.create_container(lab.trainer, account, name="documents")
    inv.upload_blobs(lab.trainer, container, [inv.Upload("report.txt", io.BytesIO(b"quarterly figures\n" * 1000))])
    script = tmp_path / "backup_with_sdk.py"
    script.write_text(readme_script())
    env = {
        "PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path),
        "STRONGROOM_URL": tls_live_server.url, "STRONGROOM_CA": str(tls_live_server.ca),
        "AZURE_TENANT_ID": tokens.tenant_id(), "AZURE_CLIENT_ID": str(app.client_id), "AZURE_CLIENT_SECRET": secret,
        "SUBSCRIPTION_ID": str(lab.lab_group.subscription.subscription_id), "RESOURCE_GROUP": lab.lab_group.name,
        "STORAGE_ACCOUNT_ID": account.resource_id, "LOCATION": lab.region.pk, "VAULT": "bv-readme",
    }
    run = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    instance = BackupInstance.objects.get(vault__name="bv-readme", datasource_resource_id=account.resource_id)
    job = Job.objects.get(instance=instance, operation=JobOperation.BACKUP)
    assert job.status == JobStatus.COMPLETED
    point = RecoveryPoint.objects.get(instance=instance)
    assert f"job {job.pk} Completed" in run.stdout and f"recovery point {point.pk}" in run.stdout
    # The activity log names the service principal as the one who acted.
    acted = ActivityLogEntry.objects.filter(principal_id=app.principal.id, status="Succeeded").values_list("operation", flat=True)
    assert {"Microsoft.DataProtection/backupVaults/write", "Microsoft.Authorization/roleAssignments/write"} <= set(acted)
