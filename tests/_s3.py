"""moto's S3 server for tests outside tests/store (the same server tests/store/conftest.py starts):
one per session on loopback, buckets with or without Object Lock, and a vault location spec."""

import logging
import uuid

import pytest

ACCESS_KEY = {"access_key_id": "strongroom-test", "secret_access_key": "strongroom-test-secret"}


def start_moto():
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def make_bucket(endpoint: str, *, object_lock: bool = True) -> str:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id=ACCESS_KEY["access_key_id"],
                          aws_secret_access_key=ACCESS_KEY["secret_access_key"])
    name = f"sr-{uuid.uuid4().hex[:20]}"
    client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=object_lock)
    return name


def s3_spec(endpoint: str, bucket: str, prefix: str = "", **extra) -> dict:
    return {"location_type": "S3", "endpoint_url": endpoint, "bucket": bucket, "prefix": prefix,
            "region": "us-east-1", "credential_source": "AccessKey", **ACCESS_KEY, **extra}


# run a test once with a local store and once with its vault's store in an S3 bucket (moto)
BOTH_BACKENDS = pytest.mark.parametrize("store_backend", ["local", "s3"], indirect=True)


def location_for(request, store_backend: str):
    """The ``storage_location`` for `create_vault` that ``store_backend`` names (None: Local)."""
    if store_backend != "s3":
        return None
    endpoint = request.getfixturevalue("moto_s3")
    return s3_spec(endpoint, make_bucket(endpoint), "vault")


def client_key_id(client) -> str:
    """The access key id a boto3 client signs with."""
    return client._request_signer._credentials.get_frozen_credentials().access_key


def aws_files(tmp_path, monkeypatch, profiles: dict) -> None:
    """A temporary shared config file with ``profiles``; no other credentials anywhere in the environment."""
    config = tmp_path / "aws-config"
    config.write_text("".join(f"[profile {name}]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n"
                              f"region = us-east-1\n" for name, (key, secret) in profiles.items()))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("STRONGROOM_S3_ACCESS_KEY_ID", "STRONGROOM_S3_SECRET_ACCESS_KEY", "STRONGROOM_S3_SESSION_TOKEN",
                 "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
