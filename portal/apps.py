from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Portal"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from portal import regions, resources  # noqa: F401

        post_migrate.connect(regions.seed_regions, sender=self)
        __import__("portal.inventory").inventory.register_resource_types()
        __import__("portal.mua").mua.register()
