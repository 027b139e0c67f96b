"""Fixtures shared by the policy, configure-protection and readiness tests (imported by those modules).

Everything is made through the services as the trainer: a vault in the lab resource group (eastus),
an HNS storage account with two containers, a flat-namespace account, an Elastic SAN with two volumes
in one volume group, and a registered PostgreSQL server (no connection is needed to protect it) with
the non-superuser test login (``pg_login``).
"""

from __future__ import annotations

import datetime as dt
import itertools
import secrets
from dataclasses import dataclass

import pytest

from protection import datasource_types
from protection.policies import services as policy_services
from security import services as security_services
from security.models import RoleDefinition

_counter = itertools.count()


@pytest.fixture
def vault(lab, request, store_backend):
    from tests._s3 import location_for
    from vaults import services as vault_services

    return vault_services.create_vault(lab.trainer, name="bv-protect", region=lab.region, resource_group=lab.lab_group,
                                       storage_location=location_for(request, store_backend))


@dataclass
class Inventory:
    account: object
    flat_account: object
    san: object
    group: object
    volumes: list
    server: object


@pytest.fixture
def inventory(lab, pg_login):
    from portal.inventory import services as inv

    t = lab.trainer
    tag = secrets.token_hex(3)
    account = inv.create_storage_account(t, resource_group=lab.lab_group, name=f"sahns{tag}", region=lab.region)
    for name in ("documents", "images"):
        inv.create_container(t, account, name=name)
    flat = inv.create_storage_account(t, resource_group=lab.lab_group, name=f"saflat{tag}", region=lab.region,
                                      hierarchical_namespace=False)
    inv.create_container(t, flat, name="archive")
    san = inv.create_elastic_san(t, resource_group=lab.lab_group, name="esan-test", region=lab.region)
    group = inv.create_volume_group(t, san, name="vg-test")
    volumes = [inv.create_volume(t, group, name=n, size_gib=1) for n in ("vol-a", "vol-b")]
    # The local server through a non-superuser login, as Azure's admin login is.
    server = pg_login.server(t, resource_group=lab.lab_group, name=f"pg-test-{tag}", region=lab.region)
    return Inventory(account, flat, san, group, volumes, server)


def spec(datasource_type, **overrides):
    base = policy_services.default_spec(datasource_type)
    values = {"frequency": base.frequency, "time": base.time, "days": base.days, "default": base.default, "extra": {},
              "every": base.every}
    values.update(overrides)
    return policy_services.PolicySpec(**values)


@pytest.fixture
def make_policy(lab, vault):
    def make(datasource_type=datasource_types.ADLS, name=None, *, principal=None, in_vault=None, **overrides):
        return policy_services.create_policy(
            principal or lab.trainer, vault=in_vault or vault, name=name or f"policy-{next(_counter)}",
            datasource_type=datasource_type, spec=spec(datasource_type, **overrides),
        )

    return make


@pytest.fixture
def principal_with(lab, django_user_model):
    """``principal_with(role_name, scope=None)``: a new user holding one role (default: the lab RG)."""

    def make(role_name, scope=None):
        n = next(_counter)
        user = django_user_model.objects.create_user(f"puser{n}", password="x" * 12, first_name="Test", last_name=f"User {n}")
        principal = security_services.principal_for_user(user)
        if role_name:
            security_services.assign_role(lab.trainer, assignee=principal, role=RoleDefinition.objects.get(name=role_name),
                                          scope=scope or lab.lab_group.resource_id)
        return principal

    return make


def grant(lab, assignee, role_name, scope):
    return security_services.assign_role(lab.trainer, assignee=assignee, role=RoleDefinition.objects.get(name=role_name),
                                         scope=scope)


def at(*args):
    return dt.datetime(*args, tzinfo=dt.timezone.utc)


def protect(lab, vault, policy, datasource, *, name=None, principal=None, run=True, **selection):
    """Configure protection of ``datasource`` (a storage account, volume or server) with the roles the
    vault identity needs granted first, and run its ConfigureProtection job inline."""
    from protection import readiness
    from protection.jobs import runner as jobs
    from protection.models import Job
    from protection.instances import services as instance_services

    kind = policy.datasource_type
    if kind == datasource_types.ELASTIC_SAN:
        selection.setdefault("snapshot_resource_group_id", datasource.volume_group.elastic_san.resource_group.resource_id)
        ds = readiness.Datasource(kind, datasource.resource_id, datasource.name,
                                  datasource.volume_group.elastic_san.resource_id, selection["snapshot_resource_group_id"])
    else:
        ds = readiness.Datasource(kind, datasource.resource_id, datasource.name)
    if kind == datasource_types.ADLS:
        selection.setdefault("all_containers", True)
    instance_services.assign_missing_roles(lab.trainer, vault=vault, datasources=[ds], level=readiness.SCOPE_RESOURCE)
    [instance] = instance_services.configure_protection(
        principal or lab.trainer, vault=vault, policy=policy,
        selections=[instance_services.DatasourceSelection(datasource.resource_id, name or f"bi-{next(_counter)}", **selection)],
    )
    if run:
        job = Job.objects.get(instance=instance)
        jobs.run(job.pk)
        instance.refresh_from_db()
    return instance
