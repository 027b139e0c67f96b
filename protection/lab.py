"""Protection's part of the demo lab, through the services as the trainer (idempotent).

In the seeded vault ``bv-contoso-lab``:

* one policy per datasource type — ``adls-daily`` (daily 02:00 UTC, 30 days, first of week 12 weeks,
  first of month 12 months), ``esan-daily`` (daily 01:00 UTC, 7 days) and ``pg-weekly`` (Sunday
  03:00 UTC, 3 months, first of month 12 months);
* the roles of reference §2.2 for the vault's identity, assigned at the resource scope by
  "Assign missing roles";
* backup instances for the source storage account (all its containers), the Elastic SAN volumes
  ``vol-data`` and ``vol-large`` (snapshots in the lab resource group; a backup of the large one runs
  long enough to watch its progress and to try Cancel) and the PostgreSQL server when it was registered. Their
  ConfigureProtection jobs run here, inline, so the lab starts with protected items.
"""

from __future__ import annotations

import datetime as dt

from portal.inventory.lab import ELASTIC_SAN, LARGE_VOLUME, POSTGRES_SERVER, SOURCE_ACCOUNT, VOLUME, VOLUME_GROUP
from portal.inventory.models import PostgresServer, StorageAccount, Volume
from protection import datasource_types, readiness
from protection.instances import services as instance_services
from protection.jobs import runner as jobs
from protection.models import BackupInstance, BackupPolicy, Job, JobOperation, JobStatus
from protection.policies import services as policy_services
from protection.policies.services import PolicySpec, Retention

LAB_POLICIES = {
    "adls-daily": (datasource_types.ADLS, PolicySpec("Daily", dt.time(2, 0), (), Retention(30, "Days"),
                                                     {"Weekly": Retention(12, "Weeks"), "Monthly": Retention(12, "Months")})),
    "esan-daily": (datasource_types.ELASTIC_SAN, PolicySpec("Daily", dt.time(1, 0), (), Retention(7, "Days"), {})),
    "pg-weekly": (datasource_types.POSTGRES_FLEX, PolicySpec("Weekly", dt.time(3, 0), ("Sunday",), Retention(3, "Months"),
                                                             {"Monthly": Retention(12, "Months")})),
}


def seed_protection(lab, *, stdout=None) -> list[BackupInstance]:
    from vaults.lab import LAB_VAULT_NAME
    from vaults.models import BackupVault

    def say(text):
        if stdout is not None:
            stdout.write(text)

    vault = BackupVault.objects.filter(resource_group=lab.lab_group, name__iexact=LAB_VAULT_NAME).first()
    if vault is None or not vault.identity_enabled:
        say("Protection: skipped (the lab vault is missing or its identity is off).")
        return []
    trainer = lab.trainer
    policies = {}
    for name, (kind, spec) in LAB_POLICIES.items():
        policies[kind] = BackupPolicy.objects.filter(vault=vault, name__iexact=name).first() or policy_services.create_policy(
            trainer, vault=vault, name=name, datasource_type=kind, spec=spec)

    wanted = []  # (kind, candidate, selection)
    account = StorageAccount.objects.filter(name=SOURCE_ACCOUNT).first()
    volume = Volume.objects.filter(name=VOLUME, volume_group__name=VOLUME_GROUP,
                                   volume_group__elastic_san__name=ELASTIC_SAN).first()
    large = Volume.objects.filter(name=LARGE_VOLUME, volume_group__name=VOLUME_GROUP,
                                  volume_group__elastic_san__name=ELASTIC_SAN).first()
    server = PostgresServer.objects.filter(name=POSTGRES_SERVER).first()
    for kind, obj, extra in (
        (datasource_types.ADLS, account, {"all_containers": True}),
        (datasource_types.ELASTIC_SAN, volume, {"snapshot_resource_group_id": lab.lab_group.resource_id}),
        # The large volume: a backup long enough to watch its progress and ETA, and to try Cancel.
        (datasource_types.ELASTIC_SAN, large, {"snapshot_resource_group_id": lab.lab_group.resource_id}),
        (datasource_types.POSTGRES_FLEX, server, {}),
    ):
        if obj is None or BackupInstance.objects.filter(vault=vault, datasource_resource_id=obj.resource_id).exists():
            continue
        candidate = next((c for c in instance_services.candidates(trainer, vault, kind) if c.resource_id == obj.resource_id), None)
        if candidate is None or not candidate.offered:
            continue
        wanted.append((kind, candidate, instance_services.DatasourceSelection(
            candidate.resource_id, candidate.default_instance_name, key=candidate.key, **extra)))

    for kind, candidate, selection in wanted:
        instance_services.assign_missing_roles(
            trainer, vault=vault, level=readiness.SCOPE_RESOURCE,
            datasources=[candidate.datasource(selection.snapshot_resource_group_id)])
        instance_services.configure_protection(trainer, vault=vault, policy=policies[kind], selections=[selection])

    # Settle every configure job of the vault that is still waiting (the worker would do the same; a
    # later delivery of the same job finds it claimed and does nothing).
    for job in Job.objects.filter(vault=vault, operation=JobOperation.CONFIGURE_PROTECTION, status=JobStatus.IN_PROGRESS,
                                  claimed_at__isnull=True):
        jobs.run(job.pk)
    instances = list(BackupInstance.objects.filter(vault=vault).order_by("name"))
    say("Protection: policies " + ", ".join(sorted(LAB_POLICIES)) + "; backup instances "
        + (", ".join(f"{i.name} ({i.get_protection_state_display()})" for i in instances) or "none") + ".")
    return instances
