import os

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Portal"
    default_auto_field = "django.db.models.BigAutoField"

    def import_models(self):
        super().import_models()
        # The inventory's models live in their own module (app label "portal", the same tables); Django
        # registers a model when its module is imported, and must know them all before the apps are ready.
        import portal.inventory.disks.models  # noqa: F401
        import portal.inventory.models  # noqa: F401

    def ready(self):
        from portal import regions, resources  # noqa: F401

        post_migrate.connect(regions.seed_regions, sender=self)
        resources.register_portal_types()
        # Celery tasks register themselves when imported; services enqueue them by name.
        import portal.inventory.tasks  # noqa: F401
        import portal.tasks  # noqa: F401
        from celery.signals import worker_process_init

        from portal.celery import die_with_the_worker

        worker_process_init.connect(die_with_the_worker(os.getpid()), weak=False)

        __import__("portal.inventory").inventory.register_resource_types()
        __import__("portal.inventory").inventory.register_guards()
        __import__("portal.mua").mua.register()
        # A service principal's token stands only while the secret it was issued against does.
        from portal.api import tokens
        from security.applications import token_problem

        tokens.register_check(token_problem)
