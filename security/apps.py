from django.apps import AppConfig
from django.db.models.signals import post_migrate


class SecurityConfig(AppConfig):
    name = "security"
    verbose_name = "Security"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from security import roles, signals  # noqa: F401  (registers receivers)
        from security.guards import register_builtin_guards

        register_builtin_guards()
        from security.mua import register_mua_guard

        register_mua_guard()
        from security import clock, mua

        clock.register_settler("security.grants", lambda now: mua.close_expired_grants(now=now))
        # Built-in roles are reference data: seeded after every migrate and after the test
        # flushes that live_server performs, which a data migration would not survive.
        post_migrate.connect(roles.seed_builtin_roles, sender=self)
