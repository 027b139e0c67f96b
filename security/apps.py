from django.apps import AppConfig
from django.db.models.signals import post_migrate


class SecurityConfig(AppConfig):
    name = "security"
    verbose_name = "Security"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from security import clock, guards, roles, signals, signin
        from security.mua import expiry
        from security.mua import guard as mua_guard

        signals.connect()
        signin.connect()  # failed and locked-out sign-ins in the activity log, and the burst alert
        guards.register_builtin_guards()
        mua_guard.register()
        clock.register_settler("security.grants", lambda now: expiry.close_expired_grants(now=now))
        # Built-in roles are reference data: seeded after every migrate and after the test
        # flushes that live_server performs, which a data migration would not survive.
        post_migrate.connect(roles.seed_builtin_roles, sender=self)
