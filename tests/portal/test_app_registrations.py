"""App registrations: the services (guarded, logged, secrets hashed) and the pages (list, register, a secret
shown once, delete secret and app), and service principals in Access control (IAM)."""

import datetime as dt
import re
import uuid

import pytest

from security import applications, roles
from security.guards import GuardDenied
from security.models import ActivityLogEntry, AppRegistration, ClientSecret, Principal, RoleAssignment, RoleDefinition
from security.operations import (
    APPLICATION_CREATE,
    APPLICATION_CREATE_AS_OWNER,
    APPLICATION_CREDENTIALS_UPDATE,
    APPLICATION_DELETE,
)

pytestmark = pytest.mark.django_db


def _name():
    return f"app-{uuid.uuid4().hex[:8]}"


def test_create_makes_a_service_principal_and_is_logged(trainer):
    app = applications.create_application(trainer, f"  {_name()}  ")
    assert app.principal.kind == Principal.Kind.SERVICE_PRINCIPAL and app.principal.get_kind_display() == "Service principal"
    assert app.display_name == app.principal.display_name and not app.principal.assignments.exists()
    entry = ActivityLogEntry.objects.get(operation=APPLICATION_CREATE, status="Succeeded")
    assert entry.scope == "/" and entry.details["appId"] == str(app.client_id)


def test_only_those_allowed_at_the_root_manage_app_registrations(backup_admin, reader, trainer):
    for who in (backup_admin, reader):
        with pytest.raises(GuardDenied):
            applications.create_application(who, _name())
    app = applications.create_application(trainer, _name())
    with pytest.raises(GuardDenied):
        applications.add_client_secret(reader, app)
    with pytest.raises(GuardDenied):
        applications.delete_application(backup_admin, app)
    # One without a directory role is refused the least they would need: registering an app as its owner.
    assert ActivityLogEntry.objects.filter(operation=APPLICATION_CREATE_AS_OWNER, status="Failed").count() == 2
    assert ActivityLogEntry.objects.filter(operation__in=[APPLICATION_CREATE, APPLICATION_DELETE,
                                                          APPLICATION_CREDENTIALS_UPDATE], status="Failed").count() == 2


def test_contributor_at_the_root_reads_app_registrations_but_cannot_manage_them(trainer, outsider, signed_in_client):
    """As in Azure, where app registrations are Entra objects outside Azure RBAC: Contributor's "*" does not
    register, change or delete them (its notActions exclude the directory's writes); reading them stays."""
    from security import rbac, services

    contributor = RoleDefinition.objects.get(name=roles.CONTRIBUTOR)
    for action in (APPLICATION_CREATE, APPLICATION_DELETE, APPLICATION_CREDENTIALS_UPDATE):
        assert not rbac.role_allows(contributor, action), action
        assert rbac.role_allows(RoleDefinition.objects.get(name=roles.OWNER), action), action
    assert rbac.role_allows(contributor, "Microsoft.Directory/applications/read")
    assert rbac.role_allows(contributor, "Microsoft.DataProtection/backupVaults/delete")  # the rest of "*" stays
    services.assign_role(trainer, assignee=outsider, role=contributor, scope="/")
    app = applications.create_application(trainer, _name())
    for attempt in (lambda: applications.create_application(outsider, _name()),
                    lambda: applications.add_client_secret(outsider, app),
                    lambda: applications.delete_application(outsider, app)):
        with pytest.raises(GuardDenied):
            attempt()
    client = signed_in_client(outsider)
    listed = client.get("/app-registrations/")
    assert listed.status_code == 200 and app.display_name in listed.content.decode()
    assert client.post("/app-registrations/new/", {"display_name": _name()}).status_code == 403
    assert AppRegistration.objects.count() == 1


def test_a_secret_is_kept_hashed_with_its_hint_and_expiry(trainer):
    app = applications.create_application(trainer, _name())
    secret, value = applications.add_client_secret(trainer, app, description="deploy")
    assert len(value) == 40 and value[3:6] == "8Q~" and secret.hint == value[:3]
    stored = ClientSecret.objects.get(pk=secret.pk)
    assert value not in stored.value_hash and stored.value_hash == applications.hash_secret(value)
    assert stored.expires_at - stored.created_at == dt.timedelta(days=180)
    entry = ActivityLogEntry.objects.get(operation=APPLICATION_CREDENTIALS_UPDATE)
    assert value not in str(entry.details) and entry.details["secretId"] == str(secret.pk)
    found_app, found = applications.verify_client_secret(str(app.client_id), value, tenant="t")
    assert (found_app, found) == (app, secret)


def test_expiry_choices(db):
    now = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    assert applications.expiry_for("90", now=now) == now + dt.timedelta(days=90)
    assert applications.expiry_for("custom", dt.date(2030, 6, 30), now=now).date() == dt.date(2030, 6, 30)
    for choice, date, field in (("custom", None, "end_date"), ("custom", dt.date(2029, 1, 1), "end_date"),
                                ("custom", dt.date(2033, 1, 1), "end_date"), ("7", None, "expires")):
        with pytest.raises(applications.ValidationError) as raised:
            applications.expiry_for(choice, date, now=now)
        assert field in raised.value.message_dict


def test_removing_a_secret_revokes_it_once(trainer):
    app = applications.create_application(trainer, _name())
    secret, value = applications.add_client_secret(trainer, app)
    applications.remove_client_secret(trainer, secret)
    with pytest.raises(applications.SecretProblem) as raised:
        applications.verify_client_secret(str(app.client_id), value, tenant="t")
    assert raised.value.code == "AADSTS7000215"
    with pytest.raises(applications.ValidationError):
        applications.remove_client_secret(trainer, secret)
    assert not applications.active_secrets(app).exists()


def test_deleting_an_app_removes_its_principal_and_its_assignments(trainer, lab):
    app = applications.create_application(trainer, _name())
    from security import services

    services.assign_role(trainer, assignee=app.principal, role=RoleDefinition.objects.get(name=roles.BACKUP_READER),
                         scope=lab.lab_group.resource_id)
    principal_id = app.principal_id
    applications.delete_application(trainer, app)
    assert not Principal.objects.filter(pk=principal_id).exists()
    assert not RoleAssignment.objects.filter(principal_id=principal_id).exists()
    assert ActivityLogEntry.objects.get(operation=APPLICATION_DELETE).details["roleAssignmentsRemoved"] == 1


# --- pages -------------------------------------------------------------------------------------------------


def test_the_pages_register_an_app_and_show_a_new_secret_once(signed_in_client, trainer):
    client = signed_in_client(trainer)
    assert "App registrations" in client.get("/").content.decode()
    name = _name()
    response = client.post("/app-registrations/new/", {"display_name": name})
    app = AppRegistration.objects.get(display_name=name)
    assert response.status_code == 302 and response["Location"] == f"/app-registrations/{app.pk}/"
    page = client.get(response["Location"]).content.decode()
    assert str(app.client_id) in page
    from portal.api import tokens

    assert tokens.tenant_id() in page
    added = client.post(f"/app-registrations/{app.pk}/secrets/", {"description": "ci", "expires": "90"})
    assert added.status_code == 200 and "no-store" in added["Cache-Control"]
    value = re.search(r'id="new-secret-value"[^>]*value="([^"]+)"', added.content.decode()).group(1)
    secret = ClientSecret.objects.get(application=app)
    assert applications.hash_secret(value) == secret.value_hash
    again = client.get(f"/app-registrations/{app.pk}/").content.decode()
    assert value not in again and f"{secret.hint}********" in again and "ci" in again
    listed = client.get("/app-registrations/").content.decode()
    assert name in listed and "1 active" in listed
    client.post(f"/app-registrations/{app.pk}/secrets/{secret.pk}/delete/")
    assert ClientSecret.objects.get(pk=secret.pk).revoked_at is not None
    wrong = client.post(f"/app-registrations/{app.pk}/delete/", {"confirm_name": "nope"})
    assert wrong.status_code == 400 and AppRegistration.objects.filter(pk=app.pk).exists()
    gone = client.post(f"/app-registrations/{app.pk}/delete/", {"confirm_name": name})
    assert gone.status_code == 302 and not AppRegistration.objects.filter(pk=app.pk).exists()


def test_bad_secret_input_is_a_400_naming_the_field(signed_in_client, trainer):
    client = signed_in_client(trainer)
    app = applications.create_application(trainer, _name())
    response = client.post(f"/app-registrations/{app.pk}/secrets/", {"expires": "custom"})
    assert response.status_code == 400 and "Choose the date the secret expires." in response.content.decode()
    assert client.post(f"/app-registrations/{app.pk}/secrets/", {"expires": "13"}).status_code == 400
    assert client.post("/app-registrations/new/", {"display_name": ""}).status_code == 400
    assert not ClientSecret.objects.exists()


def test_who_may_not_read_gets_the_explained_refusal_and_no_nav_entry(signed_in_client, outsider, reader, trainer):
    app = applications.create_application(trainer, _name())
    client = signed_in_client(outsider)
    assert client.get("/app-registrations/").status_code == 403
    assert client.get(f"/app-registrations/{app.pk}/").status_code == 403
    assert "App registrations" not in client.get("/").content.decode()
    reading = signed_in_client(reader)  # Reader at a subscription only: not at the root
    assert reading.get("/app-registrations/").status_code == 403


def test_a_reader_at_the_root_sees_but_cannot_add_a_secret(signed_in_client, outsider, trainer):
    from security import services

    services.assign_role(trainer, assignee=outsider, role=RoleDefinition.objects.get(name=roles.READER), scope="/")
    app = applications.create_application(trainer, _name())
    client = signed_in_client(outsider)
    assert client.get(f"/app-registrations/{app.pk}/").status_code == 200
    assert client.post(f"/app-registrations/{app.pk}/secrets/", {"expires": "90"}).status_code == 403
    assert not ClientSecret.objects.exists()


def test_service_principals_are_assignable_and_checkable_in_iam(signed_in_client, trainer, lab):
    app = applications.create_application(trainer, _name())
    client = signed_in_client(trainer)
    scope = lab.lab_group.resource_id
    page = client.get(f"/iam/?scope={scope}&tab=add").content.decode()
    assert f"{app.display_name} (Service principal)" in page
    role = RoleDefinition.objects.get(name=roles.BACKUP_OPERATOR)
    response = client.post("/iam/add/", {"scope": scope, "role": str(role.pk), "member": str(app.principal_id)})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert RoleAssignment.objects.filter(principal=app.principal, role=role, scope=scope).exists()
    check = client.get(f"/iam/check/?scope={scope}&member={app.principal_id}").content.decode()
    assert role.name in check


def test_the_same_secret_form_posted_again_adds_nothing_and_shows_no_value(signed_in_client, trainer):
    """A reload of the page that showed a new secret posts its form again: no second secret, no value."""
    client = signed_in_client(trainer)
    app = applications.create_application(trainer, _name())
    page = client.get(f"/app-registrations/{app.pk}/").content.decode()
    token = re.search(r'name="form_token" value="([^"]+)"', page).group(1)
    form = {"description": "ci", "expires": "90", "form_token": token}
    first = client.post(f"/app-registrations/{app.pk}/secrets/", form)
    value = re.search(r'id="new-secret-value"[^>]*value="([^"]+)"', first.content.decode()).group(1)
    again = client.post(f"/app-registrations/{app.pk}/secrets/", form)
    body = again.content.decode()
    assert again.status_code == 409 and "No new secret was added" in body and 'id="new-secret-value"' not in body
    assert value not in body and "no-store" in again["Cache-Control"]
    assert ClientSecret.objects.filter(application=app).count() == 1
    fresh = re.search(r'name="form_token" value="([^"]+)"', body).group(1)
    assert fresh != token
    assert client.post(f"/app-registrations/{app.pk}/secrets/", {**form, "form_token": fresh}).status_code == 200
    assert ClientSecret.objects.filter(application=app).count() == 2
