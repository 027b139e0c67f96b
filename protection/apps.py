from django.apps import AppConfig


class ProtectionConfig(AppConfig):
    """Every registration of the protection app happens here, when the apps are ready: importing a
    protection module registers nothing. Operation names come from `security.operations`."""

    name = "protection"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        register_job_handlers()
        register_pages()
        register_hooks()
        register_api()


def register_job_handlers() -> None:
    """The function that runs each job operation on a worker (and its cleanup, when it has one)."""
    from protection.backups import backup_job, replication, retention
    from protection.deletion import services as deletion
    from protection.instances import configure_job
    from protection.jobs import runner as jobs
    from protection.models import JobOperation
    from protection.restores import services as restores

    jobs.register_handler(JobOperation.CONFIGURE_PROTECTION, configure_job.run_configure_protection)
    jobs.register_handler(JobOperation.BACKUP, backup_job.run_backup_job, cleanup=backup_job.cleanup_backup_job)
    jobs.register_handler(JobOperation.REPLICATION, replication.run_replication_job)
    jobs.register_handler(JobOperation.RETENTION, retention.run_retention_job)
    jobs.register_handler(JobOperation.RESTORE, restores.run_restore_job, cleanup=restores.cleanup_restore_job)
    jobs.register_handler(JobOperation.VERIFY, restores.run_verify_job)
    jobs.register_handler(JobOperation.UNCONFIGURE, deletion.run_unconfigure_job)
    jobs.register_handler(JobOperation.PURGE, deletion.run_purge_job)
    # archive tier (issue 21)
    from protection.restores import rehydration
    from protection.tiering import services as tiering

    jobs.register_handler(JobOperation.TIERING, tiering.run_tiering_job)
    jobs.register_handler(JobOperation.REHYDRATE, rehydration.run_rehydrate_job)


def register_pages() -> None:
    """Resource types the portal resolves, the vault's blades and its overview tiles."""
    from portal import resources
    from protection.models import BackupInstance, BackupPolicy
    from security import operations as ops
    from vaults.panels import register_blade, register_overview_tile

    resources.register(resources.ResourceType(
        ops.POLICY_TYPE, "Backup policy", BackupPolicy, "protection:policy_detail", ops.POLICY_READ,
        icon="policy", in_resource_group=False))
    resources.register(resources.ResourceType(
        ops.INSTANCE_TYPE, "Backup instance", BackupInstance, "protection:instance_detail", ops.INSTANCE_READ,
        icon="instance", in_resource_group=False))
    register_blade("instances", "Backup instances", "protection:vault_instances", order=10)
    register_blade("policies", "Backup policies", "protection:vault_policies", order=20)
    register_blade("jobs", "Backup jobs", "protection:vault_jobs", order=30)
    register_blade("alerts", "Alerts", "protection:vault_alerts", order=40)
    register_overview_tile("jobs", "Jobs", "protection:vault_jobs_tile", order=10)
    register_overview_tile("instances", "Backup instances", "protection:vault_instances_tile", order=20)


def register_hooks() -> None:
    """What protection adds to the rules of the layers below it."""
    from protection import network
    from protection.backups import retention
    from protection.deletion import services as deletion
    from protection.instances import services as instances
    from security import clock
    from vaults.guards import register_contents_check
    from vaults.services import register_immutability_listener

    # While a vault denies public network access, data moves only through its approved private endpoints.
    network.register()
    # A vault with backup instances or policies cannot be deleted.
    register_contents_check(instances.vault_has_contents)
    # A vault that becomes immutable retains the recovery points already in its store.
    register_immutability_listener(deletion.apply_store_retention)
    # Before the lab clock moves back, record the purges and expiries due at the time it leaves
    # (the purge and retention runs then carry them out, whatever the clock reads).
    clock.register_settler("protection.purges", deletion.record_due_purges)
    clock.register_settler("protection.expiries", retention.record_expiries)
    # archive tier (issue 21): rehydrations whose delay has passed stay restorable when the clock moves back
    from protection.restores import rehydration

    clock.register_settler("protection.rehydrations", rehydration.complete_rehydrations)


def register_api() -> None:
    """What the ARM API's plumbing asks of protection: the outcome of a Job an operation follows."""
    from portal.api import lro
    from protection.api import jobs

    lro.register_job_outcome(jobs.job_outcome)
