"""Fixtures for the vault tests: vaults made through the service, principals holding one role."""

import itertools

import pytest

from security import services as security_services
from security.models import RoleDefinition

_counter = itertools.count()


@pytest.fixture
def make_vault(lab, trainer):
    """``make_vault(name="bv-x", **settings)``: a vault in the lab resource group, made by the trainer."""
    from vaults import services

    def make(name=None, *, group=None, principal=None, **kwargs):
        kwargs.setdefault("region", lab.region)
        return services.create_vault(
            principal or trainer,
            name=name or f"bv-test-{next(_counter)}",
            resource_group=group or lab.lab_group,
            **kwargs,
        )

    return make


@pytest.fixture
def vault(make_vault):
    return make_vault("bv-test")


@pytest.fixture
def principal_with(lab, trainer, django_user_model):
    """``principal_with(role_name, scope=None)``: a new user principal holding one role (default: on
    the lab resource group)."""

    def make(role_name, scope=None):
        n = next(_counter)
        user = django_user_model.objects.create_user(f"user{n}", password="x" * 12, first_name="Test", last_name=f"User {n}")
        principal = security_services.principal_for_user(user)
        if role_name:
            security_services.assign_role(
                trainer, assignee=principal, role=RoleDefinition.objects.get(name=role_name),
                scope=scope or lab.lab_group.resource_id,
            )
        return principal

    return make


@pytest.fixture
def stand_in_contents():
    """Registers a stand-in "vault contents" hook (what protection will register) that answers yes
    for the vaults put in the returned set."""
    from vaults.guards import register_contents_check, unregister_contents_check

    full = set()

    def check(vault):
        return vault.pk in full

    register_contents_check(check)
    yield full
    unregister_contents_check(check)

