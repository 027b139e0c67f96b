"""Signal receivers of `security`, connected by `SecurityConfig.ready` through `connect()`."""

from django.conf import settings
from django.db.models.signals import post_save


def give_every_user_a_principal(sender, instance, created, raw=False, **kwargs):
    if raw:
        return
    from security.models import Principal

    name = instance.get_full_name() or instance.get_username()
    Principal.objects.update_or_create(
        user=instance,
        defaults={"kind": Principal.Kind.USER, "display_name": name, "enabled": instance.is_active},
    )


def connect() -> None:
    post_save.connect(give_every_user_a_principal, sender=settings.AUTH_USER_MODEL,
                      dispatch_uid="security.give_every_user_a_principal")
