"""Start-up wiring of the backups area (called from `ProtectionConfig.ready`): the job handlers for
Backup, Replication and Retention jobs, and the vault overview's Jobs and Backup instances tiles."""


def register() -> None:
    from protection.services import backups, replication, retention  # noqa: F401  (they register job handlers)
    from vaults.panels import register_blade, register_overview_tile

    register_overview_tile("jobs", "Jobs", "protection:vault_jobs_tile", order=10)
    register_overview_tile("instances", "Backup instances", "protection:vault_instances_tile", order=20)
    register_blade("jobs", "Backup jobs", "protection:vault_jobs", order=30)
