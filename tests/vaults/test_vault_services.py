"""Vault services: every rule of issue 5 (names, settings, irreversible states, identity, deletion)."""

import pytest
from django.core.exceptions import ValidationError

from portal.models import Operation, ResourceGroup
from security import roles
from security.guards import GuardDenied, register_guard, registered_guards, unregister_guard
from security.models import ActivityLogEntry, Alert, Principal, RoleAssignment, RoleDefinition
from security.rbac import authorize
from security import services as security_services
from vaults import services, storage
from vaults.guards import DELETION_RULES_GUARD, VAULT_NOT_EMPTY_MESSAGE
from vaults.models import BackupVault

EXACT_NOT_EMPTY = (
    "Cannot delete the Backup vault as there are existing backup instances or backup policies in the vault. "
    "Delete all backup instances and backup policies that are present in the vault and then try deleting the vault."
)


# --- create ------------------------------------------------------------------------------------


def test_it_creates_a_vault_with_the_defaults(lab, trainer):
    """GIVEN the lab WHEN a vault is created with only a name THEN it has the reference's defaults,
    an identity, a store under the data root whose key the platform key unwraps, a succeeded
    Operation and a log entry."""
    vault = services.create_vault(trainer, name="bv-one", resource_group=lab.lab_group, region=lab.region)

    assert vault.storage_redundancy == "GeoRedundant"
    assert (vault.soft_delete_state, vault.soft_delete_retention_days) == ("On", 14)
    assert vault.immutability_state == "Disabled"
    assert vault.cross_subscription_restore_state == "Enabled"
    assert vault.cross_region_restore_state == "Disabled"
    assert vault.encryption_type == "PlatformManagedKey"
    assert vault.resource_id.endswith("/resourceGroups/rg-backup-lab/providers/Microsoft.DataProtection/backupVaults/bv-one")
    identity = vault.identity
    assert identity.kind == Principal.Kind.MANAGED_IDENTITY and identity.enabled
    assert identity.resource_id == vault.resource_id and identity.display_name == "bv-one"
    path = storage.store_path(vault)
    assert (path / "config").is_file()
    from django.conf import settings

    assert str(path).startswith(str(settings.STRONGROOM_DATA_ROOT))
    with storage.open_store(vault) as store:
        assert store.id == vault.store_id
    op = Operation.objects.get(resource_id__iendswith="/bv-one")
    assert op.status == Operation.Status.SUCCEEDED and op.link.endswith(f"/vaults/{vault.pk}/")
    entry = ActivityLogEntry.objects.filter(scope=vault.resource_id, operation=services.VAULT_WRITE).get()
    assert entry.status == "Succeeded" and entry.details["storeId"] == vault.store_id


def test_the_store_key_is_wrapped_by_the_platform_key(vault, settings):
    """A different platform key cannot open the store."""
    from vaults.store import LocalBackend, Store, WrongKeyError

    with pytest.raises(WrongKeyError):
        Store.open(LocalBackend(str(storage.store_path(vault))), b"\x01" * 32, cache_dir=str(storage.cache_path(vault)))


@pytest.mark.parametrize(
    "name",
    ["a", "1vault", "-vault", "vault-", "vault_1", "va ult", "välte", "v" * 51, "", "bv.lab"],
)
def test_it_refuses_names_out_of_rule(lab, trainer, name):
    with pytest.raises(ValidationError) as exc:
        services.create_vault(trainer, name=name, resource_group=lab.lab_group, region=lab.region)
    assert services.NAME_RULE_MESSAGE in exc.value.message_dict["name"]
    assert not BackupVault.objects.exists()


@pytest.mark.parametrize("name", ["ab", "a1", "Vault-2", "v" * 50, "a--b"])
def test_it_accepts_names_in_rule(lab, trainer, name):
    assert services.create_vault(trainer, name=name, resource_group=lab.lab_group, region=lab.region).name == name


def test_names_are_unique_per_resource_group_case_insensitively(lab, trainer, make_vault):
    make_vault("bv-dup")
    with pytest.raises(ValidationError) as exc:
        make_vault("BV-DUP")
    assert "already exists in the resource group 'rg-backup-lab'" in exc.value.message_dict["name"][0]
    # Another resource group may use the name.
    assert make_vault("bv-dup", group=lab.target_group).resource_group == lab.target_group
    assert BackupVault.objects.filter(name__iexact="bv-dup").count() == 2


@pytest.mark.parametrize("days", [13, 181, 0, -14, "abc", "14.5"])
def test_it_refuses_soft_delete_retention_out_of_range_at_creation(lab, trainer, days):
    with pytest.raises(ValidationError) as exc:
        services.create_vault(trainer, name="bv-r", resource_group=lab.lab_group, region=lab.region,
                              soft_delete_retention_days=days)
    assert "between 14 and 180 days" in exc.value.message_dict["soft_delete_retention_days"][0]
    assert not BackupVault.objects.exists()


@pytest.mark.parametrize("days", [14, 180, 90])
def test_it_accepts_retention_in_range(make_vault, days):
    assert make_vault(soft_delete_retention_days=days).soft_delete_retention_days == days


def test_cross_region_restore_needs_geo_redundancy(make_vault):
    with pytest.raises(ValidationError) as exc:
        make_vault(storage_redundancy="LocallyRedundant", cross_region_restore_state="Enabled")
    assert "Geo-redundant" in exc.value.message_dict["cross_region_restore_state"][0]
    assert make_vault(cross_region_restore_state="Enabled").cross_region_restore_state == "Enabled"


def test_a_vault_cannot_be_created_locked(make_vault):
    with pytest.raises(ValidationError) as exc:
        make_vault(immutability_state="Locked")
    assert "lock it afterwards" in exc.value.message_dict["immutability_state"][0]


@pytest.mark.parametrize(
    "field,value",
    [("storage_redundancy", "GRS"), ("soft_delete_state", "Enabled"), ("cross_subscription_restore_state", "Off")],
)
def test_it_refuses_values_outside_the_enums(make_vault, field, value):
    with pytest.raises(ValidationError) as exc:
        make_vault(**{field: value})
    assert field in exc.value.message_dict


def test_a_denied_create_leaves_nothing_and_is_logged(lab, outsider, settings):
    with pytest.raises(GuardDenied) as exc:
        services.create_vault(outsider, name="bv-no", resource_group=lab.lab_group, region=lab.region)
    assert exc.value.decision.guard == "RBAC"
    assert not BackupVault.objects.exists()
    assert not (settings.STRONGROOM_DATA_ROOT / "vaults").exists() or not any((settings.STRONGROOM_DATA_ROOT / "vaults").iterdir())
    assert ActivityLogEntry.objects.filter(operation=services.VAULT_WRITE, status="Failed", sub_status="Forbidden").exists()
    assert Operation.objects.get(resource_id__iendswith="/bv-no").status == Operation.Status.FAILED


def test_when_the_store_cannot_be_created_no_vault_row_or_identity_remains(lab, trainer, monkeypatch, settings):
    """GIVEN the engine fails to initialise WHEN a vault is created THEN no vault row, no identity and
    no folder remain, the Operation failed and the log says why."""
    from vaults.store import Store, StoreError

    def broken_init(*args, **kwargs):
        raise StoreError("disk full")

    monkeypatch.setattr(Store, "init", classmethod(lambda cls, *a, **k: broken_init()))
    with pytest.raises(StoreError):
        services.create_vault(trainer, name="bv-fail", resource_group=lab.lab_group, region=lab.region)
    assert not BackupVault.objects.exists()
    assert not Principal.objects.filter(kind=Principal.Kind.MANAGED_IDENTITY).exists()
    root = settings.STRONGROOM_DATA_ROOT / "vaults"
    assert not root.exists() or list(root.iterdir()) == []
    op = Operation.objects.get(resource_id__iendswith="/bv-fail")
    assert op.status == Operation.Status.FAILED and "disk full" in op.message
    assert ActivityLogEntry.objects.filter(operation=services.VAULT_WRITE, status="Failed").exists()


def test_when_the_database_fails_after_the_store_was_made_the_store_is_removed(lab, trainer, monkeypatch, settings):
    """GIVEN the store is initialised WHEN the transaction then fails THEN the folder is removed too."""
    made = []
    real_create = storage.create_store

    def create_then_remember(vault):
        made.append(storage.store_path(vault))
        return real_create(vault)

    real_save = BackupVault.save

    def failing_save(self, *args, **kwargs):
        if "store_id" in (kwargs.get("update_fields") or []):
            raise RuntimeError("database went away")
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(storage, "create_store", create_then_remember)
    monkeypatch.setattr(BackupVault, "save", failing_save)
    with pytest.raises(RuntimeError):
        services.create_vault(trainer, name="bv-dbfail", resource_group=lab.lab_group, region=lab.region)
    assert made and not made[0].exists(), "the store folder must be removed when the vault row is rolled back"
    assert not BackupVault.objects.exists()
    assert not Principal.objects.filter(kind=Principal.Kind.MANAGED_IDENTITY).exists()


def test_it_creates_the_resource_group_when_asked(lab, trainer):
    vault = services.create_vault(trainer, name="bv-newrg", subscription=lab.lab_subscription,
                                  new_resource_group_name="rg-new-vaults", region=lab.region)
    group = ResourceGroup.objects.get(name="rg-new-vaults")
    assert vault.resource_group == group and group.region == lab.region


def test_an_invalid_vault_does_not_leave_a_new_resource_group(lab, trainer):
    with pytest.raises(ValidationError):
        services.create_vault(trainer, name="-bad", subscription=lab.lab_subscription,
                              new_resource_group_name="rg-never", region=lab.region)
    assert not ResourceGroup.objects.filter(name="rg-never").exists()


def test_a_refused_vault_does_not_leave_a_new_resource_group(lab, backup_admin):
    # The backup admin holds roles on lab resource groups only, not on the subscription.
    with pytest.raises(GuardDenied):
        services.create_vault(backup_admin, name="bv-x", subscription=lab.lab_subscription,
                              new_resource_group_name="rg-never", region=lab.region)
    assert not ResourceGroup.objects.filter(name="rg-never").exists()


def test_an_existing_group_name_is_reported_on_the_new_group_field(lab, trainer):
    with pytest.raises(ValidationError) as exc:
        services.create_vault(trainer, name="bv-x", subscription=lab.lab_subscription,
                              new_resource_group_name="RG-BACKUP-LAB", region=lab.region)
    assert "new_resource_group_name" in exc.value.message_dict
    assert not BackupVault.objects.exists()


# --- name availability -------------------------------------------------------------------------


def test_check_name_availability(lab, backup_admin, make_vault):
    make_vault("bv-taken")
    check = services.check_name_availability
    assert check(backup_admin, name="bv-free", resource_group=lab.lab_group).available
    taken = check(backup_admin, name="BV-Taken", resource_group=lab.lab_group)
    assert (taken.available, taken.reason) == (False, "AlreadyExists")
    bad = check(backup_admin, name="9lives", resource_group=lab.lab_group)
    assert (bad.available, bad.reason, bad.message) == (False, "Invalid", services.NAME_RULE_MESSAGE)


def test_check_name_availability_needs_the_action(lab, reader, outsider):
    for principal in (reader, outsider):
        with pytest.raises(GuardDenied):
            services.check_name_availability(principal, name="bv-x", resource_group=lab.lab_group)


# --- soft delete -------------------------------------------------------------------------------


@pytest.fixture
def spy_guard():
    """A guard that records what every operation tells the guards (and allows everything)."""
    seen = []

    def spy(principal, operation, target, change):
        seen.append((operation, change))
        return None

    register_guard("test spy", spy, order=99)
    yield seen
    unregister_guard("test spy")


def test_turning_soft_delete_off_is_a_reduce_operation_and_raises_the_alert(vault, trainer, spy_guard):
    services.update_soft_delete(trainer, vault, state="Off")
    vault.refresh_from_db()
    assert vault.soft_delete_state == "Off"
    operation, change = spy_guard[-1]
    assert operation == services.VAULT_WRITE
    assert change["critical_operation"] == "Microsoft.DataProtection/backupVaults/write#reduceSoftDeleteSecurity"
    assert change["from"]["state"] == "On" and change["to"]["state"] == "Off"
    alert = Alert.objects.get(affected_resource_id=vault.resource_id)
    assert alert.name == "Soft Delete Disabled for Vault" and alert.category == "Security"


def test_shortening_retention_is_a_reduce_operation_raising_it_is_not(vault, trainer, spy_guard):
    services.update_soft_delete(trainer, vault, state="On", retention_days=60)
    assert "critical_operation" not in spy_guard[-1][1]
    services.update_soft_delete(trainer, vault, state="On", retention_days=30)
    assert spy_guard[-1][1]["critical_operation"].endswith("#reduceSoftDeleteSecurity")
    vault.refresh_from_db()
    assert vault.soft_delete_retention_days == 30
    # Raising it fired nothing; shortening it fired Strongroom's own alert (tested below). (The vault's alerts:
    # seeding the lab assigned privileged roles, which raised "Privileged role assigned" on their scopes.)
    on_vault = Alert.objects.filter(affected_resource_id=vault.resource_id)
    assert list(on_vault.values_list("name", flat=True)) == [services.SOFT_DELETE_RETENTION_SHORTENED_ALERT]


def test_shortening_the_retention_raises_strongroom_s_own_alert(vault, trainer, reader):
    """GIVEN soft delete On with 60 days WHEN the retention goes to 20 days THEN a Security alert
    "Soft delete retention shortened" fires on the vault, naming both periods and who did it; raising the
    retention, turning soft delete on from Off, a refused change and an always-on vault's longer retention
    fire nothing; turning soft delete off fires only "Soft Delete Disabled for Vault"."""
    from security.guards import GuardDenied

    on_vault = Alert.objects.filter(affected_resource_id=vault.resource_id)  # not the seed's privileged-role alerts
    services.update_soft_delete(trainer, vault, state="On", retention_days=60)
    with pytest.raises(GuardDenied):
        services.update_soft_delete(reader, vault, state="On", retention_days=20)
    assert not on_vault.exists()
    services.update_soft_delete(trainer, vault, state="On", retention_days=20)
    alert = on_vault.get()
    assert (alert.name, alert.category, alert.severity) == ("Soft delete retention shortened", "Security", "Sev2")
    assert alert.affected_resource_id == vault.resource_id
    assert "from 60 to 20 days" in alert.description and trainer.display_name in alert.description
    assert alert.details == {"previousRetentionDays": 60, "retentionDays": 20}
    services.update_soft_delete(trainer, vault, state="Off")
    assert sorted(on_vault.values_list("name", flat=True)) == ["Soft Delete Disabled for Vault",
                                                                    "Soft delete retention shortened"]
    services.update_soft_delete(trainer, vault, state="On", retention_days=14)  # was off: nothing shortened
    services.update_soft_delete(trainer, vault, state="AlwaysOn", retention_days=90, acknowledge_irreversible=True)
    assert on_vault.count() == 2
    services.update_soft_delete(trainer, vault, state="AlwaysOn", retention_days=30, acknowledge_irreversible=True)
    assert Alert.objects.filter(name="Soft delete retention shortened").count() == 2


@pytest.mark.parametrize("days", [13, 181, "x"])
def test_soft_delete_retention_must_be_14_to_180(vault, trainer, days):
    with pytest.raises(ValidationError) as exc:
        services.update_soft_delete(trainer, vault, state="On", retention_days=days)
    assert "between 14 and 180 days" in exc.value.message_dict["retention_days"][0]
    vault.refresh_from_db()
    assert vault.soft_delete_retention_days == 14
    assert ActivityLogEntry.objects.filter(status="Failed", sub_status="BadRequest", scope=vault.resource_id).exists()


def test_always_on_needs_the_irreversible_acknowledgement(vault, trainer):
    with pytest.raises(ValidationError) as exc:
        services.update_soft_delete(trainer, vault, state="AlwaysOn", retention_days=30)
    assert "I understand this is irreversible" in exc.value.message_dict["acknowledge_irreversible"][0]
    vault.refresh_from_db()
    assert (vault.soft_delete_state, vault.soft_delete_retention_days) == ("On", 14)
    assert ActivityLogEntry.objects.filter(status="Failed", scope=vault.resource_id).exists()


def test_a_vault_is_created_always_on_only_with_the_acknowledgement(lab, trainer):
    from vaults.models import BackupVault

    with pytest.raises(ValidationError) as exc:
        services.create_vault(trainer, name="bv-always", region=lab.region, resource_group=lab.lab_group,
                              soft_delete_state="AlwaysOn")
    assert "acknowledge_irreversible" in exc.value.message_dict
    assert not BackupVault.objects.filter(name="bv-always").exists()
    vault = services.create_vault(trainer, name="bv-always", region=lab.region, resource_group=lab.lab_group,
                                  soft_delete_state="AlwaysOn", acknowledge_irreversible=True)
    assert vault.soft_delete_state == "AlwaysOn"


def test_always_on_is_irreversible(vault, trainer):
    services.update_soft_delete(trainer, vault, state="AlwaysOn", retention_days=30, acknowledge_irreversible=True)
    for state in ("On", "Off"):
        # Issue 15: soft delete's rules are a registered guard, so the preview can tell in advance.
        with pytest.raises(GuardDenied) as exc:
            services.update_soft_delete(trainer, vault, state=state)
        assert exc.value.decision.guard == "Soft delete" and "always-on" in str(exc.value)
    vault.refresh_from_db()
    assert vault.soft_delete_state == "AlwaysOn"
    # The retention may still change.
    services.update_soft_delete(trainer, vault, state="AlwaysOn", retention_days=90)
    vault.refresh_from_db()
    assert vault.soft_delete_retention_days == 90


def test_soft_delete_off_keeps_the_previous_retention(vault, trainer):
    services.update_soft_delete(trainer, vault, state="On", retention_days=40)
    services.update_soft_delete(trainer, vault, state="Off", retention_days=999)
    vault.refresh_from_db()
    assert (vault.soft_delete_state, vault.soft_delete_retention_days) == ("Off", 40)


# --- immutability ------------------------------------------------------------------------------


def test_immutability_goes_disabled_unlocked_locked(vault, trainer):
    services.update_immutability(trainer, vault, state="Unlocked")
    assert vault.immutability_state == "Unlocked"
    with pytest.raises(ValidationError) as exc:
        services.update_immutability(trainer, vault, state="Locked", confirm_name="bv-tes")
    assert "Type the vault name 'bv-test'" in exc.value.message_dict["confirm_name"][0]
    with pytest.raises(ValidationError):
        services.update_immutability(trainer, vault, state="Locked", confirm_name="BV-TEST")
    vault.refresh_from_db()
    assert vault.immutability_state == "Unlocked"
    services.update_immutability(trainer, vault, state="Locked", confirm_name="bv-test")
    vault.refresh_from_db()
    assert vault.immutability_state == "Locked"


def test_locked_immutability_is_irreversible(vault, trainer):
    services.update_immutability(trainer, vault, state="Unlocked")
    services.update_immutability(trainer, vault, state="Locked", confirm_name=vault.name)
    for state in ("Unlocked", "Disabled"):
        # The Immutability guard refuses it before the service's own rule (issue 10), the Owner included.
        with pytest.raises(GuardDenied) as exc:
            services.update_immutability(trainer, vault, state=state)
        assert exc.value.decision.guard == "Immutability"
        assert "cannot be disabled or unlocked by anyone" in exc.value.decision.reason
    vault.refresh_from_db()
    assert vault.immutability_state == "Locked"


def test_immutability_cannot_be_locked_before_it_is_enabled(vault, trainer):
    with pytest.raises(ValidationError) as exc:
        services.update_immutability(trainer, vault, state="Locked", confirm_name=vault.name)
    assert "Enable immutability first" in exc.value.message_dict["state"][0]


def test_disabling_unlocked_immutability_is_a_reduce_operation_with_an_alert(vault, trainer, spy_guard):
    services.update_immutability(trainer, vault, state="Unlocked")
    assert "critical_operation" not in spy_guard[-1][1]
    services.update_immutability(trainer, vault, state="Disabled")
    assert spy_guard[-1][1]["critical_operation"].endswith("#reduceImmutabilityState")
    assert Alert.objects.get(affected_resource_id=vault.resource_id).name == "Immutability Disabled"


# --- cross region / subscription restore, redundancy ---------------------------------------------


def test_cross_subscription_restore_permanently_disabled_is_irreversible(vault, trainer):
    services.update_cross_subscription_restore(trainer, vault, state="Disabled")
    services.update_cross_subscription_restore(trainer, vault, state="Enabled")
    services.update_cross_subscription_restore(trainer, vault, state="PermanentlyDisabled")
    for state in ("Enabled", "Disabled"):
        with pytest.raises(ValidationError) as exc:
            services.update_cross_subscription_restore(trainer, vault, state=state)
        assert "permanently disabled" in exc.value.message_dict["state"][0]
    vault.refresh_from_db()
    assert vault.cross_subscription_restore_state == "PermanentlyDisabled"


def test_cross_region_restore_only_on_geo_redundant_vaults(make_vault, trainer):
    lrs = make_vault(storage_redundancy="LocallyRedundant")
    with pytest.raises(ValidationError):
        services.update_cross_region_restore(trainer, lrs, state="Enabled")
    grs = make_vault()
    services.update_cross_region_restore(trainer, grs, state="Enabled")
    assert grs.cross_region_restore_state == "Enabled"
    with pytest.raises(ValidationError) as exc:
        services.update_storage_redundancy(trainer, grs, redundancy="ZoneRedundant")
    assert "disable Cross Region Restore first" in exc.value.message_dict["storage_redundancy"][0]


def test_redundancy_changes_until_an_item_was_protected(vault, trainer):
    services.update_storage_redundancy(trainer, vault, redundancy="LocallyRedundant")
    assert vault.storage_redundancy == "LocallyRedundant"
    services.mark_protected_item_added(vault)
    services.mark_protected_item_added(vault)  # idempotent
    vault.refresh_from_db()
    assert vault.has_ever_protected_item
    with pytest.raises(ValidationError) as exc:
        services.update_storage_redundancy(trainer, vault, redundancy="GeoRedundant")
    assert exc.value.message_dict["storage_redundancy"] == [
        "Storage redundancy cannot be changed after protecting items to the vault."
    ]
    vault.refresh_from_db()
    assert vault.storage_redundancy == "LocallyRedundant"


def test_secondary_region_is_the_paired_region_for_geo_redundant_vaults(make_vault):
    assert make_vault().secondary_region.name == "westus"
    assert make_vault(storage_redundancy="ZoneRedundant").secondary_region is None


# --- identity ----------------------------------------------------------------------------------


def test_turning_the_identity_off_stops_it_acting_and_on_restores_it(vault, trainer, lab):
    role = RoleDefinition.objects.get(name=roles.READER)
    security_services.assign_role(trainer, assignee=vault.identity, role=role, scope=lab.lab_group.resource_id)
    action = "Microsoft.Resources/subscriptions/resourceGroups/read"
    assert authorize(vault.identity, action, lab.lab_group.resource_id).allowed
    services.set_identity_enabled(trainer, vault, enabled=False)
    vault.refresh_from_db()
    assert not vault.identity_enabled and vault.identity_type == "None"
    assert not authorize(vault.identity, action, lab.lab_group.resource_id).allowed
    assert RoleAssignment.objects.filter(principal=vault.identity).count() == 1  # kept
    services.set_identity_enabled(trainer, vault, enabled=True)
    vault.refresh_from_db()
    assert vault.identity_enabled and authorize(vault.identity, action, lab.lab_group.resource_id).allowed


def test_a_vault_created_without_identity_gets_one_when_turned_on(make_vault, trainer):
    vault = make_vault(identity_enabled=False)
    assert vault.identity is None and vault.identity_type == "None"
    services.set_identity_enabled(trainer, vault, enabled=True)
    vault.refresh_from_db()
    assert vault.identity.kind == Principal.Kind.MANAGED_IDENTITY and vault.identity_enabled


def test_only_writers_change_the_identity(vault, reader):
    with pytest.raises(GuardDenied):
        services.set_identity_enabled(reader, vault, enabled=False)
    vault.refresh_from_db()
    assert vault.identity_enabled


# --- security level (decision 6) -------------------------------------------------------------------

# (soft delete, immutability, MUA) -> level; literal, from decision 6.
LEVELS = [
    ("Off", "Disabled", False, "Poor"),
    ("Off", "Disabled", True, "Poor"),
    ("Off", "Unlocked", False, "Fair"),
    ("Off", "Unlocked", True, "Fair"),
    ("On", "Disabled", False, "Good"),
    ("On", "Unlocked", False, "Good"),
    ("On", "Disabled", True, "Good"),
    ("AlwaysOn", "Disabled", False, "Good"),
    ("Off", "Locked", False, "Good"),
    ("AlwaysOn", "Disabled", True, "Excellent"),
    ("Off", "Locked", True, "Excellent"),
    ("On", "Locked", True, "Excellent"),
]


@pytest.mark.parametrize("soft_delete,immutability,mua,expected", LEVELS)
def test_security_level(soft_delete, immutability, mua, expected):
    vault = BackupVault(soft_delete_state=soft_delete, immutability_state=immutability)
    check = lambda v: mua  # noqa: E731
    services.register_mua_link_check(check)
    try:
        assessment = services.security_level(vault)
    finally:
        services.unregister_mua_link_check(check)
    assert assessment.level == expected
    assert bool(assessment.raise_by) == (expected != "Excellent")


def test_security_level_says_what_would_raise_it():
    poor = services.security_level(BackupVault(soft_delete_state="Off", immutability_state="Disabled"))
    assert any("enable soft delete" in h for h in poor.raise_by)
    good = services.security_level(BackupVault(soft_delete_state="On", immutability_state="Disabled"))
    assert good.raise_by == [
        "To reach Excellent: protect the vault with a Resource Guard (Multi-user authorization) and make "
        "soft delete always-on or lock immutability."
    ]


def test_new_vaults_start_at_good(vault):
    assert services.security_level(vault).level == "Good"


# --- delete ------------------------------------------------------------------------------------


def test_the_deletion_guard_is_registered():
    assert DELETION_RULES_GUARD in registered_guards()
    assert VAULT_NOT_EMPTY_MESSAGE == EXACT_NOT_EMPTY


def test_deleting_an_empty_vault_removes_it_its_identity_and_its_store(
    vault, trainer, lab, django_capture_on_commit_callbacks
):
    identity = vault.identity
    role = RoleDefinition.objects.get(name=roles.READER)
    security_services.assign_role(trainer, assignee=identity, role=role, scope=lab.lab_group.resource_id)
    other = security_services.principal_for_user(lab.personas["reader"].principal.user)
    security_services.assign_role(trainer, assignee=other, role=role, scope=vault.resource_id)
    path = storage.store_path(vault)
    assert path.exists()
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_vault(trainer, vault)
    assert not BackupVault.objects.exists()
    assert not Principal.objects.filter(pk=identity.pk).exists()
    assert not RoleAssignment.objects.filter(principal_id=identity.pk).exists()
    assert not RoleAssignment.objects.filter(scope__iexact=vault.resource_id).exists()
    assert not path.exists() and not storage.cache_path(vault).exists()
    entry = ActivityLogEntry.objects.get(operation=services.VAULT_DELETE)
    assert entry.status == "Succeeded"


def test_a_vault_with_contents_is_refused_with_the_exact_message(vault, trainer, stand_in_contents):
    """GIVEN a stand-in hook saying the vault holds instances or policies WHEN deleting THEN the
    deletion guard refuses with Azure's exact text, and the vault and its store remain."""
    stand_in_contents.add(vault.pk)
    with pytest.raises(GuardDenied) as exc:
        services.delete_vault(trainer, vault)
    decision = exc.value.decision
    assert decision.reason == EXACT_NOT_EMPTY
    assert decision.guard == DELETION_RULES_GUARD
    assert BackupVault.objects.filter(pk=vault.pk).exists() and storage.store_exists(vault)
    entry = ActivityLogEntry.objects.get(operation=services.VAULT_DELETE)
    assert entry.status == "Failed" and entry.message == EXACT_NOT_EMPTY
    preview = services.delete_preview(trainer, vault)
    assert not preview.allowed and preview.reason == EXACT_NOT_EMPTY


def test_the_deletion_guard_judges_only_vault_deletes(vault, trainer, stand_in_contents):
    stand_in_contents.add(vault.pk)
    services.update_soft_delete(trainer, vault, state="On", retention_days=20)  # not refused


def test_backup_contributor_cannot_delete_a_vault(vault, principal_with):
    contributor = principal_with(roles.BACKUP_CONTRIBUTOR)
    with pytest.raises(GuardDenied) as exc:
        services.delete_vault(contributor, vault)
    assert exc.value.decision.guard == "RBAC"
    assert BackupVault.objects.filter(pk=vault.pk).exists()


# --- seed ----------------------------------------------------------------------------------------


def test_seed_vaults_is_idempotent(lab):
    from vaults.lab import seed_vaults

    first = seed_vaults(lab)
    second = seed_vaults(lab)
    assert first.pk == second.pk and first.name == "bv-contoso-lab"
    assert first.resource_group == lab.lab_group and first.region.name == "eastus"
    assert BackupVault.objects.count() == 1


def test_immutability_is_refused_on_a_store_that_cannot_enforce_retention(lab, monkeypatch):
    """GIVEN a vault whose store cannot refuse early deletes (an S3 bucket without Object Lock)
    WHEN immutability is enabled THEN it is refused with a clear message and nothing changes."""
    from django.core.exceptions import ValidationError

    from vaults import services as vault_services
    from vaults.store import ImmutabilityUnsupported

    vault = vault_services.create_vault(lab.trainer, name="bv-no-lock", region=lab.region, resource_group=lab.lab_group)

    class StoreWithoutObjectLock:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def require_immutability(self):
            raise ImmutabilityUnsupported("bucket 'b' has no Object Lock configuration")

    monkeypatch.setattr("vaults.storage.open_store", lambda vault: StoreWithoutObjectLock())
    with pytest.raises(ValidationError, match="cannot hold immutable recovery points"):
        vault_services.update_immutability(lab.trainer, vault, state="Unlocked")
    vault.refresh_from_db()
    assert vault.immutability_state == "Disabled"
