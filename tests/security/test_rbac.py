import datetime as dt

import pytest

from security import scopes
from security.rbac import action_matches, authorize, visible_to


@pytest.mark.parametrize(
    "pattern,action,expected",
    [
        ("*", "Microsoft.Anything/x/write", True),
        ("*/read", "Microsoft.DataProtection/backupVaults/read", True),
        ("*/read", "Microsoft.DataProtection/backupVaults/write", False),
        ("Microsoft.Authorization/*/Write", "Microsoft.Authorization/roleAssignments/write", True),
        ("Microsoft.DataProtection/*/action", "Microsoft.DataProtection/backupVaults/backupInstances/backup/action", True),
        ("Microsoft.Storage/storageAccounts/read", "Microsoft.Storage/storageAccounts/readx", False),
    ],
)
def test_action_patterns(pattern, action, expected):
    assert action_matches(pattern, action) is expected


def test_scope_coverage_is_by_segment_not_prefix():
    assert scopes.covers("/subscriptions/s/resourceGroups/rg1", "/subscriptions/s/resourceGroups/rg1/providers/X/y/z")
    assert not scopes.covers("/subscriptions/s/resourceGroups/rg1", "/subscriptions/s/resourceGroups/rg10")
    assert scopes.covers("/", "/subscriptions/s")
    assert scopes.covers("/subscriptions/S", "/subscriptions/s/resourceGroups/x")  # case-insensitive


@pytest.fixture
def subject(db):
    from security.models import Principal

    return Principal.objects.create(kind=Principal.Kind.USER, display_name="Subject")


def _assign(subject, role_name, scope, **kw):
    from security.models import RoleAssignment, RoleDefinition

    return RoleAssignment.objects.create(principal=subject, role=RoleDefinition.objects.get(name=role_name), scope=scope, **kw)


def test_assignment_is_inherited_downwards_not_upwards(subject):
    _assign(subject, "Reader", "/subscriptions/s/resourceGroups/rg")
    assert authorize(subject, "Microsoft.X/y/read", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.X/y/n").allowed
    assert not authorize(subject, "Microsoft.Resources/subscriptions/read", "/subscriptions/s").allowed


def test_not_actions_subtract_within_the_role(subject):
    _assign(subject, "Contributor", "/subscriptions/s")
    assert authorize(subject, "Microsoft.X/y/write", "/subscriptions/s/resourceGroups/rg").allowed
    assert not authorize(subject, "Microsoft.Authorization/roleAssignments/write", "/subscriptions/s").allowed


@pytest.mark.date_sensitive
def test_time_bound_assignment_counts_as_absent_the_moment_it_ends(subject, settings):
    from security import clock
    from security.models import LabClock

    now = clock.now()
    _assign(subject, "Reader", "/subscriptions/s", ends_at=now + dt.timedelta(hours=1))
    assert authorize(subject, "Microsoft.X/read", "/subscriptions/s").allowed
    LabClock.objects.update_or_create(pk=1, defaults={"offset_seconds": 3600})
    clock.forget_cached_offset()
    assert not authorize(subject, "Microsoft.X/read", "/subscriptions/s").allowed


@pytest.mark.date_sensitive
def test_assignment_not_yet_started_does_not_count(subject):
    from security import clock

    _assign(subject, "Reader", "/subscriptions/s", starts_at=clock.now() + dt.timedelta(minutes=5))
    assert not authorize(subject, "Microsoft.X/read", "/subscriptions/s").allowed


def test_disabled_principal_is_denied(subject):
    _assign(subject, "Owner", "/")
    subject.enabled = False
    assert not authorize(subject, "Microsoft.X/read", "/subscriptions/s").allowed


def test_denial_message_names_principal_action_and_scope(subject):
    result = authorize(subject, "Microsoft.X/y/write", "/subscriptions/s")
    message = result.message()
    assert "'Subject'" in message and str(subject.id) in message
    assert "'Microsoft.X/y/write'" in message and "'/subscriptions/s'" in message


def test_visible_to_filters_rows_by_scope(subject, lab):
    from portal.models import ResourceGroup

    _assign(subject, "Reader", lab.lab_group.resource_id)
    rows = ResourceGroup.objects.filter(visible_to(subject, "Microsoft.Resources/subscriptions/resourceGroups/read").q())
    assert list(rows) == [lab.lab_group]
