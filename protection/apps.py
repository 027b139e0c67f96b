from django.apps import AppConfig


class ProtectionConfig(AppConfig):
    name = "protection"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from portal import resources
        from protection.jobs import runner as jobs
        from protection.models import BackupInstance, BackupPolicy, JobOperation
        from protection.services import instances, policies
        from vaults.guards import register_contents_check
        from vaults.panels import register_blade

        # Policies and instances: operation names, the vault deletion rule, the job handler.
        policies.register_operation_names()
        instances.register_operation_names()
        register_contents_check(instances.vault_has_contents)
        jobs.register_handler(JobOperation.CONFIGURE_PROTECTION, instances.run_configure_protection)
        resources.register(resources.ResourceType(
            "Microsoft.DataProtection/backupVaults/backupPolicies", "Backup policy", BackupPolicy,
            "protection:policy_detail", policies.POLICY_READ, icon="policy", in_resource_group=False))
        resources.register(resources.ResourceType(
            "Microsoft.DataProtection/backupVaults/backupInstances", "Backup instance", BackupInstance,
            "protection:instance_detail", instances.INSTANCE_READ, icon="instance", in_resource_group=False))
        register_blade("instances", "Backup instances", "protection:vault_instances", order=10)
        register_blade("policies", "Backup policies", "protection:vault_policies", order=20)

        # Backups and retention (job handlers) and the vault overview tiles.
        from protection import wiring_backups

        wiring_backups.register()

        # Restores and Verify (job handlers, operation names).
        from protection.restores import services as restore_services

        restore_services.register()

        # Deleting backup data, soft delete, undelete and purge (job handlers, the store's immutability
        # listener) and the vault's Alerts blade.
        from protection.services import deletion

        deletion.register()

        # Before the lab clock moves back, record the purges and expiries due at the time it leaves
        # (the purge and retention runs then carry them out, whatever the clock reads).
        from protection.services import retention
        from security import clock

        clock.register_settler("protection.purges", deletion.record_due_purges)
        clock.register_settler("protection.expiries", retention.record_expiries)
        register_blade("alerts", "Alerts", "protection:vault_alerts", order=40)
