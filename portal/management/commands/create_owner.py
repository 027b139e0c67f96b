"""Create a production installation's first Owner (Owner at the root scope, a sign-in account).

Interactive by default; for automation, `--no-input` reads STRONGROOM_OWNER_USERNAME,
STRONGROOM_OWNER_PASSWORD (or STRONGROOM_OWNER_PASSWORD_FILE), STRONGROOM_OWNER_NAME and
STRONGROOM_OWNER_EMAIL. Refused once an Owner exists: later Owners are assigned in Access control (IAM).
"""

import getpass
import os
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from security.audit import validation_text
from security.services import create_first_owner, root_owners


class Command(BaseCommand):
    help = "Create the first Owner of this installation (interactive, or from STRONGROOM_OWNER_* with --no-input)."

    def add_arguments(self, parser):
        parser.add_argument("--username", help="The Owner's username (default: STRONGROOM_OWNER_USERNAME, or asked).")
        parser.add_argument("--name", help="Display name, e.g. 'Ada Admin' (default: STRONGROOM_OWNER_NAME).")
        parser.add_argument("--email", help="E-mail address (default: STRONGROOM_OWNER_EMAIL).")
        parser.add_argument("--no-input", action="store_false", dest="interactive",
                            help="Ask nothing: take every value from the options and the environment.")

    def handle(self, *args, interactive=True, **options):
        existing = list(root_owners().values_list("display_name", flat=True)[:3])
        if existing:
            raise CommandError(f"This installation already has an Owner ({', '.join(existing)}); nothing was made. "
                               f"An Owner assigns further Owners in Access control (IAM).")
        username = options.get("username") or os.environ.get("STRONGROOM_OWNER_USERNAME", "")
        name = options.get("name") or os.environ.get("STRONGROOM_OWNER_NAME", "")
        email = options.get("email") or os.environ.get("STRONGROOM_OWNER_EMAIL", "")
        password = self._password_from_environment()
        if interactive:
            username = username or input("Username: ").strip()
            name = name or input("Display name (e.g. Ada Admin): ").strip()
            email = email or input("E-mail (optional): ").strip()
            while not password:
                first = getpass.getpass("Password: ")
                if first != getpass.getpass("Password (again): "):
                    self.stderr.write("The two passwords differ; type them again.")
                    continue
                password = first
        elif not username or not password:
            raise CommandError("With --no-input, set STRONGROOM_OWNER_USERNAME (or --username) and "
                               "STRONGROOM_OWNER_PASSWORD or STRONGROOM_OWNER_PASSWORD_FILE.")
        try:
            principal = create_first_owner(username=username, password=password, display_name=name, email=email)
        except ValidationError as exc:
            raise CommandError(f"No Owner was made: {validation_text(exc)}") from None
        self.stdout.write(self.style.SUCCESS(
            f"'{username}' ({principal.display_name}) is Owner at the root scope ('/'). Sign in at the portal."))

    @staticmethod
    def _password_from_environment() -> str:
        if os.environ.get("STRONGROOM_OWNER_PASSWORD"):
            return os.environ["STRONGROOM_OWNER_PASSWORD"]
        path = os.environ.get("STRONGROOM_OWNER_PASSWORD_FILE")
        if path:
            try:
                return Path(path).read_text().strip()
            except OSError as exc:
                raise CommandError(f"STRONGROOM_OWNER_PASSWORD_FILE names {path!r}, which cannot be read: "
                                   f"{exc.strerror}.") from None
        return ""
