from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def give_every_user_a_principal(sender, instance, created, raw=False, **kwargs):
    if raw:
        return
    from security.models import Principal

    name = instance.get_full_name() or instance.get_username()
    Principal.objects.update_or_create(
        user=instance,
        defaults={"kind": Principal.Kind.USER, "display_name": name, "enabled": instance.is_active},
    )
