from django.apps import AppConfig


class VaultsConfig(AppConfig):
    name = "vaults"
    verbose_name = "Backup vaults"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        """Every registration of `vaults`: the resource type and the guards."""
        from portal import resources
        from security.operations import VAULT_READ
        from vaults.guards import register_vault_guards
        from vaults.models import BackupVault

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
        register_vault_guards()
        from django.core import checks

        from vaults.checks import secondary_root_check

        checks.register(secondary_root_check, "vaults")
        from django.db.models.signals import pre_delete

        from portal.inventory.models import PrivateEndpoint
        from vaults.networking.guard import register_endpoint_rules
        from vaults.networking.services import disconnect_on_endpoint_delete

        register_endpoint_rules()
        # An endpoint deleted from the inventory's side leaves the vault's connection Disconnected.
        pre_delete.connect(disconnect_on_endpoint_delete, sender=PrivateEndpoint, dispatch_uid="vaults.pe_disconnect")
