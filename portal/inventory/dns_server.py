"""The DNS responder: one UDP socket per virtual network, on its resolver's loopback address, answering with
`portal.inventory.dns.resolve` — the same function the network guard calls, so ``dig`` shows what the data
path gets.

``Responder(port).serve(stop)`` runs until ``stop`` (a threading.Event) is set: it re-reads the virtual
networks every ``refresh`` seconds, opening a socket for a new VNet and closing the socket of a deleted one.
Port 0 gives each socket a free port of its own (tests read it back with `address_of`).
``manage.py dns_responder`` runs it; ``make run`` starts that command in lab mode.

Answers: A queries follow the CNAME chain to the A records (TTL `TTL`); a name that does not exist is
NXDOMAIN; AAAA for a name that exists is an empty NOERROR answer (with its CNAMEs); other types are NOTIMP,
other classes REFUSED, a packet that is not a query is ignored.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
import time
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from django.db import close_old_connections, connection

from portal.inventory import dns as names

logger = logging.getLogger(__name__)

TTL = 10  # seconds: a record added or removed is seen at once
REFRESH_SECONDS = 3.0


@dataclass
class _Listener:
    vnet: object  # the VirtualNetwork row (id, name, resolver_number)
    sock: socket.socket

    @property
    def address(self) -> tuple[str, int]:
        return self.sock.getsockname()[:2]


def answer(vnet, wire: bytes) -> bytes | None:
    """The response to one query packet, as the resolver of ``vnet`` gives it (None: not a query, no answer)."""
    try:
        query = dns.message.from_wire(wire)
    except dns.exception.DNSException:
        return None
    if query.flags & dns.flags.QR:
        return None
    response = dns.message.make_response(query)
    response.flags |= dns.flags.RA | dns.flags.AA
    if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
        response.set_rcode(dns.rcode.NOTIMP)
        return response.to_wire()
    question = query.question[0]
    if question.rdclass != dns.rdataclass.IN:
        response.set_rcode(dns.rcode.REFUSED)
        return response.to_wire()
    if question.rdtype not in (dns.rdatatype.A, dns.rdatatype.AAAA):
        response.set_rcode(dns.rcode.NOTIMP)
        return response.to_wire()
    resolution = names.resolve(vnet, question.name.to_text())
    if not resolution.exists:
        response.set_rcode(dns.rcode.NXDOMAIN)
        return response.to_wire()
    owner = question.name
    for target in resolution.cnames:
        target_name = dns.name.from_text(target)
        response.answer.append(dns.rrset.from_text(owner, TTL, "IN", "CNAME", target_name.to_text()))
        owner = target_name
    if question.rdtype == dns.rdatatype.A:
        response.answer.append(dns.rrset.from_text_list(owner, TTL, "IN", "A", list(resolution.addresses)))
    return response.to_wire()


class Responder:
    """Serves every VNet's resolver from one thread (see the module docstring)."""

    def __init__(self, port: int, *, refresh: float = REFRESH_SECONDS, host_for=names.resolver_address):
        self.port = port
        self.refresh = refresh
        self.host_for = host_for
        self.listeners: dict[int, _Listener] = {}
        self.selector = selectors.DefaultSelector()
        self.synced = threading.Event()  # set after each re-read of the VNets

    def address_of(self, vnet) -> tuple[str, int] | None:
        listener = self.listeners.get(vnet.pk)
        return listener.address if listener else None

    def sync(self) -> None:
        """Open a socket for each new VNet and close those of deleted ones (or of a renumbered one)."""
        from portal.inventory.models import VirtualNetwork

        _refresh_connection()
        current = {v.pk: v for v in VirtualNetwork.objects.only("id", "name", "resolver_number")}
        for pk in list(self.listeners):
            listener = self.listeners[pk]
            vnet = current.get(pk)
            if vnet is None or vnet.resolver_number != listener.vnet.resolver_number:
                self._close(pk)
            else:
                listener.vnet = vnet
        for pk, vnet in current.items():
            if pk not in self.listeners:
                self._open(vnet)
        self.synced.set()

    def _open(self, vnet) -> None:
        try:
            host = self.host_for(vnet)
        except ValueError as exc:  # past the loopback range: that VNet has no resolver, the others keep theirs
            logger.warning("VNet %s gets no DNS resolver: %s", vnet.name, exc)
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((host, self.port))
        except OSError as exc:
            sock.close()
            logger.warning("DNS resolver of VNet %s cannot listen on %s:%s (%s); trying again at the next refresh.",
                           vnet.name, host, self.port, exc)
            return
        sock.setblocking(False)
        self.listeners[vnet.pk] = _Listener(vnet, sock)
        self.selector.register(sock, selectors.EVENT_READ, vnet.pk)
        logger.info("DNS resolver of VNet %s listening on %s:%s", vnet.name, *sock.getsockname()[:2])

    def _close(self, pk: int) -> None:
        listener = self.listeners.pop(pk)
        self.selector.unregister(listener.sock)
        listener.sock.close()
        logger.info("DNS resolver of VNet %s closed", listener.vnet.name)

    def _handle(self, pk: int) -> None:
        listener = self.listeners.get(pk)
        if listener is None:
            return
        try:
            wire, client = listener.sock.recvfrom(4096)
        except (BlockingIOError, InterruptedError):
            return
        try:
            _refresh_connection()
            reply = answer(listener.vnet, wire)
        except Exception:  # noqa: BLE001 - one bad query (or a database hiccup) must not stop the resolver
            logger.exception("DNS query on VNet %s failed", listener.vnet.name)
            reply = _servfail(wire)
        if reply is not None:
            listener.sock.sendto(reply, client)

    def serve(self, stop: threading.Event) -> None:
        """Answer queries until ``stop`` is set, re-reading the VNets every ``refresh`` seconds."""
        next_sync = 0.0
        try:
            while not stop.is_set():
                now = time.monotonic()
                if now >= next_sync:
                    self.sync()
                    next_sync = now + self.refresh
                timeout = min(0.2, max(0.0, next_sync - time.monotonic()))
                for key, _events in self.selector.select(timeout=timeout):
                    self._handle(key.data)
        finally:
            for pk in list(self.listeners):
                self._close(pk)
            self.selector.close()
            if not connection.in_atomic_block:  # never close a connection inside the caller's transaction
                connection.close()


def _refresh_connection() -> None:
    """Drop a broken or too old database connection before using it (a long-running process), unless the
    caller runs us inside a transaction of its own (a test's)."""
    if not connection.in_atomic_block:
        close_old_connections()


def _servfail(wire: bytes) -> bytes | None:
    try:
        response = dns.message.make_response(dns.message.from_wire(wire))
    except dns.exception.DNSException:
        return None
    response.set_rcode(dns.rcode.SERVFAIL)
    return response.to_wire()


def start_in_thread(port: int = 0, *, refresh: float = 0.2) -> tuple[Responder, threading.Event, threading.Thread]:
    """A responder serving in a daemon thread (for tests and tools): set the event and join the thread to stop."""
    responder, stop = Responder(port, refresh=refresh), threading.Event()
    thread = threading.Thread(target=responder.serve, args=(stop,), name="dns-responder", daemon=True)
    thread.start()
    return responder, stop, thread
