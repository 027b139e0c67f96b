"""Seed the demo lab, idempotently, through every app's services (run by `make run`). It lives in the
top-floor app, which may import every other app's seed."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from portal.inventory.lab import seed_inventory
from portal.lab import seed_tenancy
from portal.mua.lab import seed_mua
from protection.lab import seed_protection
from protection.lab_drill import seed_drill
from vaults.lab import seed_vaults
from labs.lab import seed_demo_class
from vaults.mua import seed_mua_vault


class Command(BaseCommand):
    help = "Create the Contoso Lab demo: subscriptions, resource groups, trainer and personas."

    def handle(self, *args, **options):
        if not settings.STRONGROOM_LAB_MODE:
            raise CommandError(
                "seed_lab makes demo users, an Owner and personas: it runs only in lab mode (STRONGROOM_MODE=lab, "
                "as `make run` sets). This installation runs in production mode; create the first Owner with "
                "`manage.py create_owner` instead.")
        lab = seed_tenancy(stdout=self.stdout)
        seed_inventory(lab, stdout=self.stdout)
        # Later parts (inventory, vaults, protection, guards) are added here, in order, each
        # through its own app's services with `lab` as the shared context.
        seed_vaults(lab, stdout=self.stdout)
        seed_protection(lab, stdout=self.stdout)
        seed_mua(lab, stdout=self.stdout)
        seed_mua_vault(lab, stdout=self.stdout)
        seed_drill(lab, stdout=self.stdout)
        seed_demo_class(lab, stdout=self.stdout)
        self.stdout.write(self.style.SUCCESS("The demo lab is ready."))
        if settings.STRONGROOM_DEMO_PASSWORD:
            self.stdout.write("Demo accounts use the password set in STRONGROOM_DEMO_PASSWORD.")
        else:
            self.stdout.write(f"Demo accounts' passwords: {settings.STRONGROOM_DEMO_PASSWORDS_FILE} (readable by you only).")
        return None
