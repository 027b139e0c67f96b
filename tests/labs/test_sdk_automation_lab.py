"""The lab "Automate backups with the Azure SDK": offered in lab mode with the sandbox's real values in its script;
each check fails before its step (and on near misses) and passes after its solve; the script itself, run with
Microsoft's SDK against the live server as the trainee's service principal, passes steps 3 to 5; a reset deletes
the trainee's app; and a trainee's app is theirs alone."""

from __future__ import annotations

import sys
import textwrap

import pytest
from django.urls import reverse

from tests.api.conftest import sdk_client  # noqa: F401  (fixture)
from tests.labs.conftest import check, solve, step_check

pytestmark = pytest.mark.django_db

SLUG = "sdk-automation"


def _script(run) -> str:
    """The Python script of step 3, as the lab page shows it (the sandbox's values filled in), unindented."""
    from labs import catalogue, services
    from labs.catalogue import fill_names, sdk_automation

    names = services.context_for(run).names
    text = fill_names(catalogue.get(SLUG).step("vault").instructions, names)
    start = text.index(sdk_automation.SCRIPT.splitlines()[0])
    block = text[start:text.index("\nRun part 1")]
    return textwrap.dedent(block)


def _app_of(trainee):
    from security.models import AppRegistration

    return AppRegistration.objects.filter(created_by=trainee).order_by("-created_at").first()


# --- offered, with the sandbox's values --------------------------------------------------------------


def test_the_lab_is_offered_in_lab_mode_with_the_sandboxs_values(client, trainee, start):
    from labs import catalogue, services
    from portal.api import tokens

    assert SLUG in [lab.slug for lab in catalogue.available()]
    client.force_login(trainee.user)
    assert "Automate backups with the Azure SDK" in client.get(reverse("labs:lab_list")).content.decode()
    run = start(SLUG)
    page = client.get(reverse("labs:run_page", args=[run.pk])).content.decode()  # step 1 on the page
    world = run.sandbox
    assert tokens.tenant_id() in page and f"backup-automation-{world.code}" in page
    html = catalogue.get(SLUG).step("vault").instructions_html(services.context_for(run).names)
    subscription_id = world.subscription_id.rsplit("/", 1)[-1]
    for value in (tokens.tenant_id(), subscription_id, f"rg-lab-{world.code}", "https://127.0.0.1:8443",
                  "var/tls/ca.pem", f"sbx{world.code}src", "disable_instance_discovery=True",
                  "<pre><code># automate.py"):
        assert value in html, value
    script = _script(run)
    assert "{" not in script and "}" not in script  # every field filled, nothing left in braces
    compile(script, "automate.py", "exec")  # a script that runs as it is shown
    assert f'SUBSCRIPTION_ID = "{subscription_id}"' in script and 'ACCOUNT_ID = "/subscriptions/' in script


# --- each check before and after its solve ---------------------------------------------------------------


def test_each_step_fails_before_and_passes_after_its_solve(lab, trainee, start):
    from labs import services
    from security import applications
    from vaults import services as vault_services

    run = start(SLUG)
    world = services.context_for(run).world
    assert not check(run)["app"][0] and "no app registration yet" in check(run)["app"][1]

    # An app whose only secret is removed does not count; the solve adds a secret.
    app = applications.create_application(trainee, f"mine-{world.names.code}")
    secret, _ = applications.add_client_secret(trainee, app)
    applications.remove_client_secret(trainee, secret)
    passed, message = step_check(run, "app").passed, step_check(run, "app").message
    assert not passed and "no client secret that signs in" in message
    solve(run, "app")
    assert step_check(run, "app").passed and _app_of(trainee) == app

    assert "holds no role on" in step_check(run, "role").message
    solve(run, "role")
    result = step_check(run, "role")
    assert result.passed and "Backup Contributor" in result.message

    # A vault the trainee made (not their service principal) does not count.
    vault_services.create_vault(trainee, name="bv-mine", region=world.source_account.region,
                                resource_group=world.backup_group)
    assert "no Backup vault created by" in step_check(run, "vault").message
    solve(run, "vault")
    assert step_check(run, "vault").passed

    assert not step_check(run, "instance").passed
    solve(run, "instance")  # the vault identity's missing role assigned as the trainee, the rest as the SP
    assert step_check(run, "instance").passed

    assert "No backup of" in step_check(run, "backup").message
    solve(run, "backup")
    result = step_check(run, "backup")
    assert result.passed and "recovery point" in result.message
    assert all(passed for passed, _ in check(run).values())
    run.refresh_from_db()
    assert run.completed_at is not None


def test_an_expired_secret_does_not_sign_in_and_the_check_says_so(lab, trainee, start):
    import datetime as dt

    import time_machine

    from security import applications, clock

    run = start(SLUG)
    app = applications.create_application(trainee, "expiring")
    applications.add_client_secret(trainee, app, expires_at=clock.now() + dt.timedelta(days=90))
    assert step_check(run, "app").passed
    with time_machine.travel(clock.now() + dt.timedelta(days=91), tick=False):
        assert "expired" in step_check(run, "app").message


# --- the script itself, with the SDK, as the service principal --------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_labs_script_run_with_the_sdk_as_the_service_principal_passes_steps_3_to_5(
        lab, trainee, start, sdk_client, worker, monkeypatch):  # noqa: F811
    """Steps 1 and 2 solved; then the script of the instructions runs as shown, except that its client is the
    test's SDK client against the live server (http) with a token of the app's service principal and secret."""
    import azure.identity
    import azure.mgmt.dataprotection
    from azure.core.exceptions import HttpResponseError

    from labs import services
    from protection import datasource_types, readiness
    from protection.instances import services as instance_services
    from vaults.models import BackupVault

    run = services.start_lab(trainee, SLUG, run_jobs_inline=True)
    solve(run, "app")
    solve(run, "role")
    app = _app_of(trainee)
    secret = app.secrets.get()
    world = services.context_for(run).world
    subscription_id = str(world.subscription.subscription_id)
    client = sdk_client(app.principal, subscription_id, sid=str(secret.pk), appid=str(app.client_id))
    monkeypatch.setattr(azure.identity, "ClientSecretCredential", lambda *args, **kwargs: object())
    monkeypatch.setattr(azure.mgmt.dataprotection, "DataProtectionMgmtClient", lambda *args, **kwargs: client)
    monkeypatch.setenv("AZURE_CLIENT_ID", str(app.client_id))
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "not used: the test's client carries the token")
    script = compile(_script(run), "automate.py", "exec")

    def part(number: str) -> None:
        monkeypatch.setattr(sys, "argv", ["automate.py", number])
        exec(script, {"__name__": "__main__"})  # noqa: S102 - the lab's own script, as the trainee runs it

    part("1")
    assert step_check(run, "vault").passed
    # Part 2 first meets backup readiness: the vault identity lacks its role, and the SP may not assign it.
    with pytest.raises(HttpResponseError) as refused:
        part("2")
    assert refused.value.error.code == "UserErrorMissingRequiredPermissions"
    assert not step_check(run, "instance").passed
    vault = BackupVault.objects.get(resource_group=world.backup_group, name="bv-sdk")
    account = world.source_account
    instance_services.assign_missing_roles(
        trainee, vault=vault, level=readiness.SCOPE_RESOURCE,
        datasources=[readiness.Datasource(datasource_types.ADLS, account.resource_id, account.name)])
    part("2")  # the worker runs the ConfigureProtection job while the SDK's poller waits
    assert step_check(run, "instance").passed
    part("3")  # the backup job, likewise
    result = step_check(run, "backup")
    assert result.passed, result.message
    assert all(passed for passed, _ in check(run).values())


# --- a reset takes the trainee's app along ---------------------------------------------------------------


def test_a_reset_deletes_the_app_and_its_service_principals_roles(lab, trainee, start):
    from labs import services
    from security.models import ActivityLogEntry, AppRegistration, Principal
    from security.operations import APPLICATION_DELETE

    run = start(SLUG)
    solve(run, "app")
    solve(run, "role")
    app = _app_of(trainee)
    sp_id = app.principal_id
    other = start("vault-basics")  # a newer sandbox of theirs: the app with a role stays this one's
    assert other.sandbox != run.sandbox
    services.reset_lab(trainee, run, run_jobs_inline=True)
    assert not AppRegistration.objects.filter(pk=app.pk).exists()
    assert not Principal.objects.filter(pk=sp_id).exists()
    assert ActivityLogEntry.objects.filter(operation=APPLICATION_DELETE, status="Succeeded").exists()


def test_sandbox_apps_tells_whose_sandbox_an_app_is(lab, trainee, make_trainee, start):
    from labs import teardown
    from security import applications

    first = start(SLUG)
    solve(first, "app")
    solve(first, "role")
    with_role = _app_of(trainee)
    second = start("vault-basics")
    loose = applications.create_application(trainee, "no role yet")
    someone = make_trainee("someone")
    start(SLUG, who=someone)
    theirs = applications.create_application(someone, "theirs")
    assert teardown.sandbox_apps(first.sandbox) == [with_role]  # the role-less app is the newer sandbox's
    assert teardown.sandbox_apps(second.sandbox) == [loose]
    assert theirs not in teardown.sandbox_apps(first.sandbox) + teardown.sandbox_apps(second.sandbox)
