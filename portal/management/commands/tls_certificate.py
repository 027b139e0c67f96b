"""Make Strongroom's CA and the API's TLS certificate when missing (`portal.tls`); ``make run`` runs it first.

    manage.py tls_certificate [--dir var/tls] [--name extra.host.name ...]

Prints where the files are. Safe to run again: the CA is kept, the server certificate renewed only when it
is missing, lacks a name, or ends within 30 days.
"""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from portal import tls


class Command(BaseCommand):
    help = "Generate (on first run) the local CA and the TLS certificate the API is served with over HTTPS."

    def add_arguments(self, parser):
        parser.add_argument("--dir", default=None, help="Where the files go (default: <STRONGROOM_VAR_DIR>/tls).")
        parser.add_argument("--name", action="append", default=[],
                            help="Another host name or address the certificate must hold (repeatable).")

    def handle(self, *args, dir=None, name=(), **options):
        directory = Path(dir) if dir else Path(settings.VAR_DIR) / "tls"
        files, made = tls.ensure(directory, tls.default_names() + list(name))
        said = {(): "Kept the existing CA and server certificate", ("server",): "Renewed the server certificate",
                ("ca", "server"): "Generated a new CA and server certificate"}[tuple(made)]
        self.stdout.write(f"{said}.\n  CA (trust this): {files.ca}\n  Certificate: {files.certificate}\n"
                          f"  Key: {files.key}")
