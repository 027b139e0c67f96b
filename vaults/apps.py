from django.apps import AppConfig


class VaultsConfig(AppConfig):
    name = "vaults"
    verbose_name = "Backup vaults"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from portal import resources
        from vaults.guards import register_vault_guards
        from vaults.models import BackupVault
        from vaults.services import VAULT_READ, register_operation_names

        resources.register(
            resources.ResourceType(
                BackupVault.RESOURCE_TYPE,
                "Backup vault",
                BackupVault,
                "vaults:vault_detail",
                VAULT_READ,
                icon="vault",
            )
        )
        register_operation_names()
        register_vault_guards()
