"""Constrained delegation (issue 18): Azure's "constrain roles" condition on role assignments.

The seeded lab's backup admin holds Role Based Access Control Administrator on its two resource groups with
a condition: only the roles a vault identity needs ("Assign missing roles"), to managed identities only.
`authorize` enforces it on roleAssignments/write and /delete; unconditioned grants (Owner's ``*``) are not
affected; assigning a privileged administrator role raises "Privileged role assigned".
"""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from security import conditions, roles
from security import services as security_services
from security.guards import GuardDenied, evaluate
from security.models import ActivityLogEntry, Alert, RoleAssignment, RoleDefinition
from security.operations import ROLE_ASSIGNMENT_DELETE, ROLE_ASSIGNMENT_WRITE

pytestmark = pytest.mark.django_db

ALERT = security_services.PRIVILEGED_ROLE_ALERT


def _role(name):
    return RoleDefinition.objects.get(name=name)


def _azure_refusal(principal, action, scope):
    return (f"The client '{principal.display_name}' with object id '{principal.id}' does not have authorization or an "
            f"ABAC condition not fulfilled to perform action '{action}' over scope '{scope}' or the scope is invalid. "
            "If access was recently granted, please refresh your credentials.")


@pytest.fixture
def identity(lab):
    """A Backup vault's system-assigned managed identity (a service principal, for a condition)."""
    from vaults import services as vault_services

    vault = vault_services.create_vault(lab.trainer, name="bv-delegation", region=lab.region,
                                        resource_group=lab.lab_group)
    return vault.identity


def _privileged_alerts(**filters):
    return list(Alert.objects.filter(name=ALERT, **filters).order_by("raised_at"))


# --- the condition as data and as Azure's text -----------------------------------------------------------


def test_the_seeded_backup_admin_is_constrained_to_the_vault_identity_roles(lab, backup_admin):
    rows = RoleAssignment.objects.filter(principal=backup_admin, role__name=roles.RBAC_ADMINISTRATOR)
    assert {r.scope for r in rows} == {lab.lab_group.resource_id, lab.target_group.resource_id}
    for row in rows:
        assert row.condition == conditions.vault_identity_delegation()
        assert row.condition_version == "2.0"
        assert row.condition["principalTypes"] == ["ServicePrincipal"]
        assert row.condition["actions"] == ["write", "delete"]
    assigned = {RoleDefinition.objects.get(pk=pk).name for pk in rows[0].condition["roleDefinitionIds"]}
    assert assigned == set(roles.VAULT_IDENTITY_ROLES)
    assert not assigned & set(roles.PRIVILEGED_ADMINISTRATOR_ROLES)


def test_the_condition_renders_as_azure_s_expression():
    """Azure's own example ("Constrain roles": Backup Contributor or Backup Reader), letter for letter."""
    backup_contributor, backup_reader = "5e467623-bb1f-42f4-a55d-6e525e11384b", "a795c7a0-d4a2-40c1-ae25-d81f01202912"
    only = conditions.Condition(conditions.ALLOW_ROLES, (backup_contributor, backup_reader))
    assert only.render() == (
        "((!(ActionMatches{'Microsoft.Authorization/roleAssignments/write'})) OR "
        "(@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals "
        "{5e467623-bb1f-42f4-a55d-6e525e11384b, a795c7a0-d4a2-40c1-ae25-d81f01202912})) AND "
        "((!(ActionMatches{'Microsoft.Authorization/roleAssignments/delete'})) OR "
        "(@Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals "
        "{5e467623-bb1f-42f4-a55d-6e525e11384b, a795c7a0-d4a2-40c1-ae25-d81f01202912}))"
    )
    typed = conditions.Condition(conditions.ALLOW_ROLES, (backup_contributor,), ("ServicePrincipal",), ("write",))
    assert typed.render() == (
        "((!(ActionMatches{'Microsoft.Authorization/roleAssignments/write'})) OR "
        "(@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals "
        "{5e467623-bb1f-42f4-a55d-6e525e11384b} AND "
        "@Request[Microsoft.Authorization/roleAssignments:PrincipalType] ForAnyOfAnyValues:StringEqualsIgnoreCase "
        "{'ServicePrincipal'}))"
    )
    but = conditions.Condition.parse(conditions.all_but_privileged_administrators())
    assert "ForAnyOfAllValues:GuidNotEquals {" in but.render() and roles.role_id(roles.OWNER) in but.render()


@pytest.mark.parametrize("data,error", [
    ({"kind": "allowRoles", "roleDefinitionIds": []}, "Select at least one role"),
    ({"kind": "maybe", "roleDefinitionIds": ["5e467623-bb1f-42f4-a55d-6e525e11384b"]}, "Unknown condition kind"),
    ({"roleDefinitionIds": ["not-a-guid"]}, "is not a role definition id"),
    ({"roleDefinitionIds": ["5e467623-bb1f-42f4-a55d-6e525e11384b"], "principalTypes": ["Robot"]}, "Unknown principal type"),
    ({"roleDefinitionIds": ["5e467623-bb1f-42f4-a55d-6e525e11384b"], "actions": ["read"]}, "adding role assignments"),
])
def test_a_condition_that_cannot_be_kept_says_what_is_wrong(data, error):
    with pytest.raises(conditions.ConditionError, match=error):
        conditions.Condition.parse(data)


def test_only_delegation_roles_carry_a_condition(lab, trainer, outsider):
    with pytest.raises(ValidationError) as exc:
        security_services.assign_role(trainer, assignee=outsider, role=_role(roles.READER),
                                      scope=lab.lab_group.resource_id, condition=conditions.vault_identity_delegation())
    assert "Only Role Based Access Control Administrator and User Access Administrator" in exc.value.message_dict["condition"][0]
    assert not RoleAssignment.objects.filter(principal=outsider).exists()


def test_a_condition_naming_no_existing_role_is_refused(lab, trainer, outsider):
    with pytest.raises(ValidationError, match="No role definition has the id"):
        security_services.assign_role(trainer, assignee=outsider, role=_role(roles.RBAC_ADMINISTRATOR),
                                      scope=lab.lab_group.resource_id,
                                      condition={"roleDefinitionIds": ["00000000-0000-0000-0000-000000000001"]})


# --- enforcement ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("role_name", roles.PRIVILEGED_ADMINISTRATOR_ROLES)
def test_the_constrained_backup_admin_cannot_make_itself_a_privileged_administrator(role_name, lab, backup_admin):
    scope = lab.lab_group.resource_id
    with pytest.raises(GuardDenied) as exc:
        security_services.assign_role(backup_admin, assignee=backup_admin, role=_role(role_name), scope=scope)
    decision = exc.value.decision
    assert decision.guard == "RBAC" and decision.code == "AuthorizationFailed"
    assert decision.reason == _azure_refusal(backup_admin, ROLE_ASSIGNMENT_WRITE, scope)
    assert "carries a condition" in decision.remedy and "Storage Account Backup Contributor" in decision.remedy
    # (It holds Role Based Access Control Administrator already: the seeded, constrained one.)
    assert not RoleAssignment.objects.filter(principal=backup_admin, role__name=role_name, condition__isnull=True).exists()
    refused = ActivityLogEntry.objects.get(principal=backup_admin, operation=ROLE_ASSIGNMENT_WRITE, status="Failed")
    assert refused.message == decision.reason and refused.details["role"] == role_name


def test_the_backup_admin_may_give_a_vault_identity_its_backup_role(lab, backup_admin, identity):
    assignment = security_services.assign_role(backup_admin, assignee=identity,
                                               role=_role(roles.STORAGE_ACCOUNT_BACKUP_CONTRIBUTOR),
                                               scope=lab.lab_group.resource_id)
    assert assignment.principal == identity and assignment.condition is None
    entry = ActivityLogEntry.objects.get(operation=ROLE_ASSIGNMENT_WRITE, principal=backup_admin, status="Succeeded")
    assert entry.details["role"] == roles.STORAGE_ACCOUNT_BACKUP_CONTRIBUTOR
    # ...and remove it again: the condition covers removing too.
    security_services.remove_role_assignment(backup_admin, assignment)
    assert not RoleAssignment.objects.filter(pk=assignment.pk).exists()


def test_the_same_role_to_a_user_is_refused(lab, backup_admin, outsider):
    """The condition says managed identities (service principals) only."""
    scope = lab.target_group.resource_id
    with pytest.raises(GuardDenied) as exc:
        security_services.assign_role(backup_admin, assignee=outsider,
                                      role=_role(roles.STORAGE_ACCOUNT_BACKUP_CONTRIBUTOR), scope=scope)
    assert exc.value.decision.reason == _azure_refusal(backup_admin, ROLE_ASSIGNMENT_WRITE, scope)
    assert "service principals (managed identities) only" in exc.value.decision.remedy
    assert not RoleAssignment.objects.filter(principal=outsider).exists()


def test_a_role_outside_the_condition_is_refused_for_a_managed_identity_too(lab, backup_admin, identity):
    with pytest.raises(GuardDenied):
        security_services.assign_role(backup_admin, assignee=identity, role=_role(roles.BACKUP_CONTRIBUTOR),
                                      scope=lab.lab_group.resource_id)


def test_removing_an_assignment_it_may_not_remove_is_refused(lab, backup_admin, backup_operator):
    assignment = RoleAssignment.objects.get(principal=backup_operator, role__name=roles.BACKUP_OPERATOR)
    with pytest.raises(GuardDenied) as exc:
        security_services.remove_role_assignment(backup_admin, assignment)
    assert exc.value.decision.reason == _azure_refusal(backup_admin, ROLE_ASSIGNMENT_DELETE, lab.lab_group.resource_id)
    assert RoleAssignment.objects.filter(pk=assignment.pk).exists()
    # Nor its own Backup Contributor assignment: Backup Contributor is not a role its condition lists.
    own = RoleAssignment.objects.get(principal=backup_admin, role__name=roles.BACKUP_CONTRIBUTOR, scope=lab.lab_group.resource_id)
    with pytest.raises(GuardDenied):
        security_services.remove_role_assignment(backup_admin, own)


def test_evaluate_without_the_role_being_assigned_is_a_refusal(lab, backup_admin, identity):
    """Nothing to judge, nothing allowed (Azure's condition reads the request); with it, the decision is exact."""
    scope = lab.lab_group.resource_id
    assert not evaluate(backup_admin, ROLE_ASSIGNMENT_WRITE, scope).allowed
    ok = conditions.request_for(_role(roles.READER), identity).as_change()
    assert evaluate(backup_admin, ROLE_ASSIGNMENT_WRITE, scope, ok).allowed
    assert not evaluate(backup_admin, ROLE_ASSIGNMENT_WRITE, lab.lab_subscription.resource_id, ok).allowed  # not its scope


def test_owner_is_unaffected(lab, trainer, outsider):
    assignment = security_services.assign_role(trainer, assignee=outsider, role=_role(roles.OWNER),
                                               scope=lab.lab_group.resource_id)
    security_services.remove_role_assignment(trainer, assignment)


def test_an_unconditioned_grant_beside_a_constrained_one_still_allows(lab, trainer, backup_admin, outsider):
    security_services.assign_role(trainer, assignee=backup_admin, role=_role(roles.USER_ACCESS_ADMINISTRATOR),
                                  scope=lab.lab_group.resource_id)
    security_services.assign_role(backup_admin, assignee=outsider, role=_role(roles.READER), scope=lab.lab_group.resource_id)


def test_a_constrained_user_access_administrator_is_held_to_it_too(lab, trainer, outsider, reader):
    only_reader = {"kind": "allowRoles", "roleDefinitionIds": [roles.role_id(roles.READER)], "principalTypes": ["User"]}
    security_services.assign_role(trainer, assignee=outsider, role=_role(roles.USER_ACCESS_ADMINISTRATOR),
                                  scope=lab.target_group.resource_id, condition=only_reader)
    security_services.assign_role(outsider, assignee=reader, role=_role(roles.READER), scope=lab.target_group.resource_id)
    with pytest.raises(GuardDenied):
        security_services.assign_role(outsider, assignee=reader, role=_role(roles.CONTRIBUTOR),
                                      scope=lab.target_group.resource_id)


def test_all_but_privileged_administrators(lab, trainer, outsider, reader):
    security_services.assign_role(trainer, assignee=outsider, role=_role(roles.RBAC_ADMINISTRATOR),
                                  scope=lab.target_group.resource_id,
                                  condition=conditions.all_but_privileged_administrators())
    security_services.assign_role(outsider, assignee=reader, role=_role(roles.CONTRIBUTOR), scope=lab.target_group.resource_id)
    for privileged in roles.PRIVILEGED_ADMINISTRATOR_ROLES:
        with pytest.raises(GuardDenied):
            security_services.assign_role(outsider, assignee=reader, role=_role(privileged),
                                          scope=lab.target_group.resource_id)


# --- the seeded lab: readiness still works, re-seeding adds the condition ---------------------------------


def test_assign_missing_roles_still_works_as_the_backup_admin(lab, backup_admin):
    from portal.inventory import services as inventory
    from protection import datasource_types, readiness
    from protection.instances import services as instances
    from vaults import services as vault_services

    vault = vault_services.create_vault(lab.trainer, name="bv-readiness", region=lab.region, resource_group=lab.lab_group)
    account = inventory.create_storage_account(lab.trainer, resource_group=lab.lab_group, name="sadelegation1",
                                               region=lab.region)
    ds = readiness.Datasource(datasource_types.ADLS, account.resource_id, account.name)
    before = readiness.check(backup_admin, vault, ds)
    assert before.status == readiness.ROLE_ASSIGNMENT_NOT_DONE and before.can_assign
    assert before.assignable_levels == ("Resource", "Resource group")
    created = instances.assign_missing_roles(backup_admin, vault=vault, datasources=[ds], level="Resource")
    assert [(a.role.name, a.principal) for a in created] == [(roles.STORAGE_ACCOUNT_BACKUP_CONTRIBUTOR, vault.identity)]
    assert readiness.check(backup_admin, vault, ds).ok


def test_every_role_readiness_assigns_is_a_vault_identity_role():
    from protection import readiness
    from protection.restores import readiness as restore_readiness

    assert set(readiness.BACKUP_ROLE_ACTIONS) <= set(roles.VAULT_IDENTITY_ROLES)
    assert set(restore_readiness.RESTORE_ROLE_ACTIONS) <= set(roles.VAULT_IDENTITY_ROLES)
    with pytest.raises(ValueError, match="not a vault identity role"):
        readiness.vault_identity_need(roles.OWNER, "/", "/", "anywhere", ())


def test_reseeding_adds_the_condition_to_an_existing_assignment(lab, backup_admin):
    from portal.lab import seed_tenancy

    old = RoleAssignment.objects.get(principal=backup_admin, role__name=roles.RBAC_ADMINISTRATOR, scope=lab.lab_group.resource_id)
    security_services.set_assignment_condition(lab.trainer, old, None)  # as an installation seeded before conditions
    old.refresh_from_db()
    assert old.condition is None and old.condition_version == ""
    seed_tenancy()
    old.refresh_from_db()
    assert old.condition == conditions.vault_identity_delegation() and old.condition_version == "2.0"
    entry = ActivityLogEntry.objects.filter(operation=ROLE_ASSIGNMENT_WRITE, details__assignmentId=str(old.pk)).first()
    assert entry.status == "Succeeded" and entry.details["condition"].startswith("((!(ActionMatches{")


# --- the alert ---------------------------------------------------------------------------------------------


def test_assigning_a_privileged_role_raises_the_alert(lab, trainer, outsider, reader):
    seeded = len(_privileged_alerts())
    scope = lab.target_group.resource_id
    security_services.assign_role(trainer, assignee=outsider, role=_role(roles.READER), scope=scope)
    assert len(_privileged_alerts()) == seeded  # not for others
    security_services.assign_role(trainer, assignee=outsider, role=_role(roles.OWNER), scope=scope)
    owner = _privileged_alerts(details__assignee=outsider.display_name)
    assert [(a.category, a.severity, a.affected_resource_id) for a in owner] == [("Security", "Sev1", scope)]
    assert "Terry Trainer assigned Owner to Oscar Outsider" in owner[0].description
    security_services.assign_role(trainer, assignee=reader, role=_role(roles.RBAC_ADMINISTRATOR), scope=scope,
                                  condition=conditions.vault_identity_delegation())
    [constrained] = _privileged_alerts(details__assignee=reader.display_name)
    assert constrained.severity == "Sev2" and constrained.details["condition"].startswith("((!(ActionMatches")


def test_a_refused_privileged_assignment_raises_no_alert(lab, backup_admin):
    seeded = len(_privileged_alerts())
    with pytest.raises(GuardDenied):
        security_services.assign_role(backup_admin, assignee=backup_admin, role=_role(roles.OWNER),
                                      scope=lab.lab_group.resource_id)
    assert len(_privileged_alerts()) == seeded


def test_the_first_owner_and_the_system_roles_raise_no_alert(db, django_user_model):
    from protection.system_access import ensure_system_access

    user = django_user_model.objects.create_user("first-owner", password="x" * 12)
    assert security_services.bootstrap_root_owner(security_services.principal_for_user(user)) is not None
    ensure_system_access()
    assert not Alert.objects.exists()


# --- IAM ---------------------------------------------------------------------------------------------------


def _iam(scope, tab=""):
    return f"{reverse('portal:iam')}?scope={scope}" + (f"&tab={tab}" if tab else "")


def test_iam_adds_a_constrained_assignment_and_shows_its_condition(client, lab, trainer, outsider):
    client.force_login(trainer.user)
    scope = lab.target_group.resource_id
    add = client.get(_iam(scope, "add")).content.decode()
    assert "Allow user to only assign selected roles to selected principals (fewer privileges)" in add
    assert "Allow user to assign all roles except privileged administrator roles Owner, UAA, RBAC (Recommended)" in add
    assert "Allow user to assign all roles (highly privileged)" in add
    assert add.count("data-delegation") == 2  # the two roles that offer the Conditions section
    sabc = _role(roles.STORAGE_ACCOUNT_BACKUP_CONTRIBUTOR)
    response = client.post(reverse("portal:iam_add"), {
        "scope": scope, "role": _role(roles.RBAC_ADMINISTRATOR).pk, "member": outsider.pk,
        "delegation": "constrained", "condition_roles": [sabc.pk], "condition_principal_types": ["ServicePrincipal"],
    })
    assert response.status_code == 302
    assignment = RoleAssignment.objects.get(principal=outsider)
    assert assignment.condition == {"kind": "allowRoles", "roleDefinitionIds": [str(sabc.pk)],
                                    "principalTypes": ["ServicePrincipal"], "actions": ["write", "delete"]}
    listing = client.get(_iam(scope)).content.decode()
    assert '<th scope="col">Condition</th>' in listing
    row = listing[listing.index(f'data-assignment="{assignment.pk}"'):]
    row = row[:row.index("</tr>")]
    assert "View" in row and "Add or remove only role assignments of Storage Account Backup Contributor" in row
    assert "ForAnyOfAnyValues:GuidEquals {" + str(sabc.pk) + "}" in row


def test_iam_recommended_choice_and_its_errors(client, lab, trainer, outsider, reader):
    client.force_login(trainer.user)
    scope = lab.target_group.resource_id
    rbac = _role(roles.RBAC_ADMINISTRATOR).pk
    refused = client.post(reverse("portal:iam_add"), {"scope": scope, "role": rbac, "member": outsider.pk,
                                                      "delegation": "constrained"})
    assert refused.status_code == 400 and "Select the roles the member may assign" in refused.content.decode()
    assert client.post(reverse("portal:iam_add"), {"scope": scope, "role": rbac, "member": outsider.pk,
                                                   "delegation": "allButPrivileged"}).status_code == 302
    assert RoleAssignment.objects.get(principal=outsider).condition == conditions.all_but_privileged_administrators()
    # The choice means nothing for a role that cannot carry a condition.
    assert client.post(reverse("portal:iam_add"), {"scope": scope, "role": _role(roles.READER).pk, "member": reader.pk,
                                                   "delegation": "allButPrivileged"}).status_code == 302
    assert RoleAssignment.objects.get(principal=reader, scope=scope).condition is None


def test_iam_as_the_constrained_backup_admin(client, lab, backup_admin, outsider):
    """The page says what the condition allows, offers no Remove it would refuse, Check access is honest, and
    a refused POST shows Azure's message."""
    client.force_login(backup_admin.user)
    scope = lab.lab_group.resource_id
    add = client.get(_iam(scope, "add")).content.decode()
    assert "carry a condition" in add and "Your current roles do not include" not in add
    listing = client.get(_iam(scope)).content.decode()
    assert "Yes, remove" not in listing  # nothing here is a vault identity's role yet
    check = client.get(reverse("portal:iam_check_access"), {"scope": scope, "member": backup_admin.pk}).content.decode()
    assert "Allowed with a condition" in check and "With a condition" in check
    response = client.post(reverse("portal:iam_add"), {"scope": scope, "role": _role(roles.OWNER).pk,
                                                       "member": backup_admin.pk})
    assert response.status_code == 403
    body = response.content.decode()
    assert "does not have authorization or an ABAC condition not fulfilled" in body
    assert not RoleAssignment.objects.filter(principal=backup_admin, role__name=roles.OWNER).exists()


def test_iam_edits_a_condition(client, lab, trainer, backup_admin):
    """View/Edit: the Edit page starts from the condition it has; saving another choice changes it (logged);
    "all roles" removes it and raises the alert again; an empty choice of roles is refused, saying why."""
    client.force_login(trainer.user)
    scope = lab.lab_group.resource_id
    held = RoleAssignment.objects.get(principal=backup_admin, role__name=roles.RBAC_ADMINISTRATOR, scope=scope)
    listing = client.get(_iam(scope)).content.decode()
    assert f"tab=condition&amp;assignment={held.pk}" in listing
    page = client.get(_iam(scope, "condition") + f"&assignment={held.pk}").content.decode()
    assert "Role assignment condition" in page and re.search(r'value="constrained"[^>]*checked', page)
    assert re.search(f'value="{roles.role_id(roles.STORAGE_ACCOUNT_BACKUP_CONTRIBUTOR)}"[^>]*checked', page)
    assert not re.search(f'value="{roles.role_id(roles.OWNER)}"[^>]*checked', page)
    url = reverse("portal:iam_condition", args=[held.pk])

    refused = client.post(url, {"scope": scope, "delegation": "constrained"})
    assert refused.status_code == 400 and "Select the roles the member may assign" in refused.content.decode()
    assert client.post(url, {"scope": scope, "delegation": "allButPrivileged"}).status_code == 302
    held.refresh_from_db()
    assert held.condition == conditions.all_but_privileged_administrators()
    entry = ActivityLogEntry.objects.filter(operation=ROLE_ASSIGNMENT_WRITE, details__assignmentId=str(held.pk)).first()
    assert "GuidNotEquals" in entry.details["condition"] and "GuidEquals" in entry.details["previousCondition"]

    seeded = len(_privileged_alerts(severity="Sev1"))
    assert client.post(url, {"scope": scope, "delegation": "all"}).status_code == 302
    held.refresh_from_db()
    assert held.condition is None
    assert len(_privileged_alerts(severity="Sev1")) == seeded + 1


def test_the_constrained_backup_admin_cannot_loosen_its_own_condition(client, lab, backup_admin):
    client.force_login(backup_admin.user)
    scope = lab.lab_group.resource_id
    held = RoleAssignment.objects.get(principal=backup_admin, role__name=roles.RBAC_ADMINISTRATOR, scope=scope)
    assert "tab=condition" not in client.get(_iam(scope)).content.decode()
    response = client.post(reverse("portal:iam_condition", args=[held.pk]), {"scope": scope, "delegation": "all"})
    assert response.status_code == 403
    held.refresh_from_db()
    assert held.condition == conditions.vault_identity_delegation()


def test_a_role_that_cannot_carry_a_condition_is_not_given_one(client, lab, trainer, backup_operator):
    client.force_login(trainer.user)
    scope = lab.lab_group.resource_id
    held = RoleAssignment.objects.get(principal=backup_operator, role__name=roles.BACKUP_OPERATOR)
    response = client.post(reverse("portal:iam_condition", args=[held.pk]),
                           {"scope": scope, "delegation": "allButPrivileged"}, follow=True)
    assert "Backup Operator cannot" in response.content.decode()
    held.refresh_from_db()
    assert held.condition is None
    with pytest.raises(ValidationError):
        security_services.set_assignment_condition(trainer, held, None)
