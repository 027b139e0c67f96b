"""Strongroom's own certificate authority and the API's TLS certificate (`manage.py tls_certificate`).

The Azure SDK sends bearer tokens over HTTPS only, so the API is also served over TLS (`scripts/run.sh`, port
STRONGROOM_API_PORT). On first run a CA is generated (``<dir>/ca.pem``, its key ``ca-key.pem`` beside it,
0600) and a server certificate signed by it (``server.pem``, ``server-key.pem``) for 127.0.0.1, ::1,
localhost, the host name and any names given. A client trusts the CA: ``connection_verify="var/tls/ca.pem"``.
Later runs keep the CA and renew the server certificate only when it is missing, lacks a name, or ends
within RENEW_DAYS. Keys are EC P-256; nothing here talks to the network.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
SERVER_DAYS = 397
RENEW_DAYS = 30
DEFAULT_NAMES = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class TlsFiles:
    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca-key.pem"

    @property
    def certificate(self) -> Path:
        return self.directory / "server.pem"

    @property
    def key(self) -> Path:
        return self.directory / "server-key.pem"


def default_names() -> list[str]:
    names = list(DEFAULT_NAMES)
    host = socket.gethostname()
    if host and host not in names:
        names.append(host)
    return names


def _write(path: Path, data: bytes, *, private: bool) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, 0o600 if private else 0o644)
    os.replace(tmp, path)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _new_ca(files: TlsFiles):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Strongroom"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"Strongroom local CA ({socket.gethostname()})")])
    now = _now()
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(files.ca_key, _key_pem(key), private=True)
    _write(files.ca, cert.public_bytes(serialization.Encoding.PEM), private=False)
    return cert, key


def _load_ca(files: TlsFiles):
    cert = x509.load_pem_x509_certificate(files.ca.read_bytes())
    key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
    return cert, key


def _san(names) -> x509.SubjectAlternativeName:
    entries = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _new_server(files: TlsFiles, ca_cert, ca_key, names) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
        .add_extension(_san(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=False, crl_sign=False,
                                     content_commitment=False, data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write(files.key, _key_pem(key), private=True)
    _write(files.certificate, cert.public_bytes(serialization.Encoding.PEM), private=False)


def _server_is_good(files: TlsFiles, ca_cert, names) -> bool:
    if not (files.certificate.exists() and files.key.exists()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(files.certificate.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    present = {str(v) for v in san.get_values_for_type(x509.IPAddress)} | set(san.get_values_for_type(x509.DNSName))
    wanted = {str(ipaddress.ip_address(n)) if _is_ip(n) else n for n in names}
    return (cert.issuer == ca_cert.subject and wanted <= present
            and cert.not_valid_after_utc - _now() > dt.timedelta(days=RENEW_DAYS))


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def ensure(directory: Path, names=None) -> tuple[TlsFiles, list[str]]:
    """The CA and server certificate under ``directory``, made when missing; and what was made ("ca",
    "server")."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    names = list(dict.fromkeys(names or default_names()))
    files, made = TlsFiles(directory), []
    if files.ca.exists() and files.ca_key.exists():
        ca_cert, ca_key = _load_ca(files)
    else:
        ca_cert, ca_key = _new_ca(files)
        made.append("ca")
    if "ca" in made or not _server_is_good(files, ca_cert, names):
        _new_server(files, ca_cert, ca_key, names)
        made.append("server")
    return files, made
