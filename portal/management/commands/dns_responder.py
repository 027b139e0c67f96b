"""Serve each virtual network's DNS resolver over UDP (`portal.inventory.dns_server`).

VNet number n answers on 127.53.n.1 at STRONGROOM_DNS_PORT (5353 unless set; --port overrides), from the
private DNS zones linked to it, otherwise with the public answer: ``dig @127.53.1.1 -p 5353 <name>``. New and
deleted VNets are picked up every few seconds. Reads only: it changes nothing. ``make run`` starts it.
"""

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from portal.inventory import dns_server


class Command(BaseCommand):
    help = "Answer DNS queries on each virtual network's resolver address (127.53.<n>.1) until stopped."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=None,
                            help="UDP port of every resolver (default: STRONGROOM_DNS_PORT).")
        parser.add_argument("--refresh", type=float, default=dns_server.REFRESH_SECONDS,
                            help="Seconds between re-reads of the virtual networks.")
        parser.add_argument("--seconds", type=float, default=0,
                            help="Stop after this many seconds (default 0: serve until stopped).")

    def handle(self, *args, port=None, refresh=dns_server.REFRESH_SECONDS, seconds=0, **options):
        port = settings.STRONGROOM_DNS_PORT if port is None else port
        stop = threading.Event()
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous[signum] = signal.signal(signum, lambda *_: stop.set())
        if seconds:
            timer = threading.Timer(seconds, stop.set)
            timer.daemon = True
            timer.start()
        try:
            responder = dns_server.Responder(port, refresh=refresh)
            responder.sync()
            listening = ", ".join(f"{listener.vnet.name} on {host}:{bound}"
                                  for listener in responder.listeners.values()
                                  for host, bound in [listener.address]) or "no virtual network yet"
            self.stdout.write(f"DNS resolvers (UDP, port {port}): {listening}. New virtual networks are picked up "
                              f"every {refresh:g} s.")
            responder.serve(stop)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
