"""The ransomware drill's part of the demo lab (issue 10), through the services, idempotently.

"bv-contoso-drill" is the vault a careful backup admin sets up, and the drill's target: a compromised (or
careless) admin account tries to destroy its backups and every attempt is refused for its own reason.

* The trainer owns the data: an HNS storage account "contosofinance" (container "finance", a few files).
* The backup admin creates the vault, two policies ("adls-daily": 30 days and 12 weeks; "adls-7d": 7 days,
  the shorter retention the drill tries to switch to), protects the account ("Assign missing roles" at
  the resource, then Configure protection) and takes one backup (a recovery point of real data).
* Then the admin locks it down: immutability Enabled and locked (the store retains the point in
  compliance mode until its expiry), soft delete always-on (30 days), and the lab's Resource Guard linked (MUA).

Security level: Excellent. The trainer can play the drill in the browser as the backup admin.
"""

from __future__ import annotations

import datetime as dt
import io

from django.core.exceptions import ValidationError

from portal.inventory import blobs
from portal.inventory import services as inventory
from portal.inventory.models import StorageAccount
from protection import datasource_types, readiness
from protection.backups import services as backups
from protection.instances import services as instance_services
from protection.jobs import runner as jobs
from protection.models import BackupInstance, BackupPolicy, Job, JobOperation, JobStatus, RecoveryPoint
from protection.policies import services as policy_services
from protection.policies.services import PolicySpec, Retention

DRILL_VAULT_NAME = "bv-contoso-drill"
DRILL_ACCOUNT = "contosofinance"
DRILL_CONTAINER = "finance"
DRILL_INSTANCE = "contosofinance"
DRILL_POLICY = "adls-daily"
DRILL_SHORT_POLICY = "adls-7d"
DRILL_SOFT_DELETE_DAYS = 30
DRILL_FILES = {
    "2025/ledger-q1.csv": b"account,amount\n" + b"4000,1250.00\n" * 400,
    "2025/ledger-q2.csv": b"account,amount\n" + b"4100,980.50\n" * 400,
    "payroll/march.txt": b"Payroll run for March: 42 employees.\n" * 50,
    "README.txt": b"Contoso finance exports. Backed up to bv-contoso-drill.\n",
}


def seed_drill(lab, *, stdout=None):
    """Returns (vault, instance). Needs the MUA part of the lab (the Resource Guard) seeded first."""
    from portal.mua.lab import LAB_GUARD_NAME
    from security import mua
    from security.models import ResourceGuard
    from vaults import services as vault_services
    from vaults.models import BackupVault, ImmutabilityState, SoftDeleteState, StorageRedundancy

    trainer = lab.trainer
    admin = lab.personas["backup-admin"].principal

    account = StorageAccount.objects.filter(name=DRILL_ACCOUNT).first()
    if account is None:
        account = inventory.create_storage_account(trainer, resource_group=lab.lab_group, name=DRILL_ACCOUNT,
                                                   region=lab.region)
    container = account.containers.filter(name=DRILL_CONTAINER).first() or inventory.create_container(
        trainer, account, name=DRILL_CONTAINER)
    if not any(True for _ in blobs.iter_blobs(container)):
        inventory.upload_blobs(trainer, container, [inventory.Upload(n, io.BytesIO(d)) for n, d in DRILL_FILES.items()])

    vault = BackupVault.objects.filter(resource_group=lab.lab_group, name__iexact=DRILL_VAULT_NAME).first()
    if vault is None:
        # Locally-redundant: the drill needs no secondary copy (and no Replication job after each backup).
        vault = vault_services.create_vault(admin, name=DRILL_VAULT_NAME, resource_group=lab.lab_group, region=lab.region,
                                            storage_redundancy=StorageRedundancy.LOCALLY_REDUNDANT)

    def policy(name, spec):
        return BackupPolicy.objects.filter(vault=vault, name__iexact=name).first() or policy_services.create_policy(
            admin, vault=vault, name=name, datasource_type=datasource_types.ADLS, spec=spec)

    daily = policy(DRILL_POLICY, PolicySpec("Daily", dt.time(2, 0), (), Retention(30, "Days"),
                                            {"Weekly": Retention(12, "Weeks")}))
    policy(DRILL_SHORT_POLICY, PolicySpec("Daily", dt.time(2, 0), (), Retention(7, "Days"), {}))

    instance = BackupInstance.objects.filter(vault=vault, datasource_resource_id=account.resource_id).first()
    if instance is None:
        instance_services.assign_missing_roles(admin, vault=vault, level=readiness.SCOPE_RESOURCE, datasources=[
            readiness.Datasource(datasource_types.ADLS, account.resource_id, account.name)])
        [instance] = instance_services.configure_protection(admin, vault=vault, policy=daily, selections=[
            instance_services.DatasourceSelection(account.resource_id, DRILL_INSTANCE, all_containers=True)])
    for job in Job.objects.filter(instance=instance, operation=JobOperation.CONFIGURE_PROTECTION,
                                  status=JobStatus.IN_PROGRESS, claimed_at__isnull=True):
        jobs.run(job.pk)
    instance.refresh_from_db()
    if not RecoveryPoint.objects.filter(instance=instance).exists():
        job = jobs.run(backups.backup_now(admin, instance, retention_rule="Default").pk)
        if job is None or job.status != JobStatus.COMPLETED:
            raise ValidationError(f"The drill's first backup failed: {job.error_code if job else ''} "
                                  f"{job.error_message if job else ''}")

    vault.refresh_from_db()
    if vault.immutability_state == ImmutabilityState.DISABLED:
        vault_services.update_immutability(admin, vault, state=ImmutabilityState.UNLOCKED)
    if vault.immutability_state == ImmutabilityState.UNLOCKED:
        vault_services.update_immutability(admin, vault, state=ImmutabilityState.LOCKED, confirm_name=vault.name)
    if vault.soft_delete_state != SoftDeleteState.ALWAYS_ON:  # 30 days: shortening it is a protected operation
        vault_services.update_soft_delete(admin, vault, state=SoftDeleteState.ALWAYS_ON, retention_days=DRILL_SOFT_DELETE_DAYS,
                                          acknowledge_irreversible=True)
    guard = ResourceGuard.objects.filter(name=LAB_GUARD_NAME).first()
    if guard is not None and not mua.is_linked(vault.resource_id):
        mua.link_resource_guard(admin, vault, guard_id=guard.resource_id, region=vault.region_id)
    if stdout:
        stdout.write(f"Drill: {vault.name} (immutability locked, soft delete always-on, "
                     f"{'MUA linked' if guard else 'no Resource Guard'}) protecting {account.name}.")
    return vault, instance
