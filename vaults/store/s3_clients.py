"""The boto3 S3 clients one process shares between its stores (s3.py's backends): one per endpoint, client
settings and credential identity, never another vault's credentials; a forked child starts afresh."""

from __future__ import annotations

import collections
import hashlib
import os
import threading
from typing import Optional

import boto3
import botocore.exceptions as bex
from botocore.config import Config

from .errors import StoreError

MAX_CLIENTS = 32  # distinct (endpoint, credentials, settings) kept per process; the least recently used goes
_salt = os.urandom(16)  # the cache's digests of credentials mean nothing outside this process
# what boto3's default chain reads from the environment (besides the shared files)
_CHAIN_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE",
              "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ROLE_ARN",
              "AWS_ROLE_SESSION_NAME", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
              "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_EC2_METADATA_DISABLED",
              "HOME")


class _Clients:
    """One process's clients. A forked child (a Celery prefork worker) sees another pid and starts afresh:
    its parent's connections are not its own, and the parent's lock may have been held at the fork."""

    def __init__(self):
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.by_key: "collections.OrderedDict[tuple, object]" = collections.OrderedDict()


_clients = _Clients()


def _ours() -> _Clients:
    global _clients
    if _clients.pid != os.getpid():
        _clients = _Clients()
    return _clients


def _file_stamp(path: str) -> tuple:
    try:
        st = os.stat(os.path.expanduser(path))
    except OSError:
        return (path, None)
    return (path, st.st_mtime_ns, st.st_size)


def credential_identity(access_key_id: Optional[str], secret_access_key: Optional[str],
                        session_token: Optional[str], profile: Optional[str]) -> str:
    """A digest telling credential sets apart, for the client cache's key (which never holds a secret).

    Explicit keys: the key, secret and token. Otherwise boto3's chain decides, from the profile, the
    ``AWS_*`` environment and the shared config and credentials files (their path, size and mtime: an
    edited profile gets a new client)."""
    if access_key_id or secret_access_key or session_token:
        parts = ("key", access_key_id, secret_access_key, session_token)
    else:
        env = tuple(os.environ.get(k) for k in _CHAIN_ENV)
        config = os.environ.get("AWS_CONFIG_FILE") or "~/.aws/config"
        creds = os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials"
        parts = ("chain", profile, env, _file_stamp(config), _file_stamp(creds))
    return hashlib.blake2b(repr(parts).encode(), key=_salt, digest_size=20).hexdigest()


def _new_client(endpoint_url, region, config, access_key_id, secret_access_key, session_token, profile):
    try:
        session = boto3.session.Session(aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key,
                                        aws_session_token=session_token, region_name=region,
                                        profile_name=profile or None)
    except bex.ProfileNotFound:
        where = os.environ.get("AWS_CONFIG_FILE") or "~/.aws/config"
        raise StoreError(f"the AWS profile {profile!r} is not in the shared config or credentials files "
                         f"({where}, {os.environ.get('AWS_SHARED_CREDENTIALS_FILE') or '~/.aws/credentials'}): "
                         "add it there on every host that runs workers, or leave the profile blank") from None
    return session.client("s3", endpoint_url=endpoint_url, config=config)


def shared_client(*, endpoint_url: Optional[str], region: str, addressing: str, settings: tuple,
                  access_key_id: Optional[str] = None, secret_access_key: Optional[str] = None,
                  session_token: Optional[str] = None, profile: Optional[str] = None):
    """This process's boto3 S3 client for these settings and this credential identity (made on first use).

    ``settings``: (max_attempts, max_pool_connections, connect_timeout, read_timeout). Thread-safe: two
    threads asking at once may both build one, and both get the one that was kept."""
    key = (endpoint_url, region, addressing, settings,
           credential_identity(access_key_id, secret_access_key, session_token, profile), profile or None)
    clients = _ours()
    with clients.lock:
        client = clients.by_key.get(key)
        if client is not None:
            clients.by_key.move_to_end(key)
            return client
    max_attempts, pool, connect_timeout, read_timeout = settings
    config = Config(retries={"max_attempts": max_attempts, "mode": "standard"}, max_pool_connections=pool,
                    connect_timeout=connect_timeout, read_timeout=read_timeout, s3={"addressing_style": addressing})
    made = _new_client(endpoint_url, region, config, access_key_id, secret_access_key, session_token, profile)
    with clients.lock:
        client = clients.by_key.setdefault(key, made)
        clients.by_key.move_to_end(key)
        while len(clients.by_key) > MAX_CLIENTS:
            clients.by_key.popitem(last=False)  # not closed: a backend may still use it; its pool goes with it
    return client


def forget_clients() -> None:
    """Drop this process's shared clients (the next backend makes a new one; those in use stay usable)."""
    clients = _ours()
    with clients.lock:
        clients.by_key.clear()
