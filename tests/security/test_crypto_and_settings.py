import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from security.crypto import decrypt_secret, encrypt_secret, platform_key

ROOT = Path(__file__).resolve().parents[2]


def test_secrets_round_trip_and_are_bound_to_their_purpose():
    token = encrypt_secret("s3cret-pässword", purpose="postgres-server:/a")
    assert "s3cret" not in token
    assert decrypt_secret(token, purpose="postgres-server:/a") == "s3cret-pässword"
    with pytest.raises(InvalidTag):
        decrypt_secret(token, purpose="postgres-server:/b")


def test_platform_key_is_32_bytes_and_stable():
    assert len(platform_key()) == 32 and platform_key() == platform_key()


STRIPPED = {"SECRET_KEY", "STRONGROOM_MASTER_KEY", "DEBUG", "STRONGROOM_MODE", "ALLOWED_HOSTS", "DJANGO_SETTINGS_MODULE", "DATABASE_URL",
            "STRONGROOM_DEMO_PASSWORD"}
MASTER_KEY = bytes(range(100, 132)).hex()  # 64 hex digits, 32 bytes


def _settings_import(env):
    clean = {k: v for k, v in os.environ.items() if k not in STRIPPED}
    clean.update(env)
    return subprocess.run([sys.executable, "-c", "import portal.settings"], cwd=ROOT, env=clean,
                          capture_output=True, text=True)


def _production(tmp_path, **extra):
    return {"STRONGROOM_MODE": "production", "STRONGROOM_VAR_DIR": str(tmp_path), "ALLOWED_HOSTS": "backup.example.com",
            **extra}


def test_production_is_the_default_and_refuses_to_start_without_keys(tmp_path):
    result = _settings_import({"STRONGROOM_VAR_DIR": str(tmp_path), "ALLOWED_HOSTS": "backup.example.com"})
    assert result.returncode != 0
    assert "SECRET_KEY is required in production mode" in result.stderr


def test_production_refuses_a_missing_master_key(tmp_path):
    result = _settings_import(_production(tmp_path, SECRET_KEY="x" * 50))
    assert result.returncode != 0 and "STRONGROOM_MASTER_KEY is required" in result.stderr


@pytest.mark.parametrize("key", ["x", "y" * 50, "00" * 32, "ab" * 31, "c3VwZXJzZWNyZXQ="])
def test_a_master_key_that_is_not_32_random_bytes_is_refused(tmp_path, key):
    result = _settings_import(_production(tmp_path, SECRET_KEY="x" * 50, STRONGROOM_MASTER_KEY=key))
    assert result.returncode != 0 and "STRONGROOM_MASTER_KEY" in result.stderr, result.stderr
    assert "32 random bytes" in result.stderr or "does not look random" in result.stderr


def test_production_requires_allowed_hosts(tmp_path):
    env = _production(tmp_path, SECRET_KEY="x" * 50, STRONGROOM_MASTER_KEY=MASTER_KEY)
    del env["ALLOWED_HOSTS"]
    result = _settings_import(env)
    assert result.returncode != 0 and "ALLOWED_HOSTS is required in production mode" in result.stderr


@pytest.mark.parametrize("key", [MASTER_KEY, base64.b64encode(bytes(range(32))).decode(),
                                 base64.urlsafe_b64encode(bytes(range(200, 232))).decode().rstrip("=")])
def test_production_starts_with_both_keys(tmp_path, key):
    result = _settings_import(_production(tmp_path, SECRET_KEY="x" * 50, STRONGROOM_MASTER_KEY=key))
    assert result.returncode == 0, result.stderr


def test_the_master_key_can_come_from_a_file(tmp_path):
    key_file = tmp_path / "master.key"
    key_file.write_text(MASTER_KEY + "\n")
    result = _settings_import(_production(tmp_path, SECRET_KEY="x" * 50, STRONGROOM_MASTER_KEY_FILE=str(key_file)))
    assert result.returncode == 0, result.stderr
    missing = _settings_import(_production(tmp_path, SECRET_KEY="x" * 50,
                                           STRONGROOM_MASTER_KEY_FILE=str(tmp_path / "nothing")))
    assert missing.returncode != 0 and "cannot be read" in missing.stderr


def test_a_typo_in_a_boolean_or_the_mode_fails_loudly(tmp_path):
    result = _settings_import({"DEBUG": "maybe", "STRONGROOM_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0 and "DEBUG must be true or false" in result.stderr
    result = _settings_import({"STRONGROOM_MODE": "demo", "STRONGROOM_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0 and "STRONGROOM_MODE must be one of lab, production" in result.stderr


def test_lab_mode_generates_keys_once_with_private_permissions(tmp_path):
    var = tmp_path / "var"
    assert _settings_import({"STRONGROOM_MODE": "lab", "STRONGROOM_VAR_DIR": str(var)}).returncode == 0
    key_file = var / "master_key"
    first = key_file.read_text()
    assert len(bytes.fromhex(first)) == 32
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert oct(var.stat().st_mode & 0o777) == "0o700"
    assert oct((var / "strongroom.sqlite3").stat().st_mode & 0o777) == "0o600"
    assert _settings_import({"STRONGROOM_MODE": "lab", "STRONGROOM_VAR_DIR": str(var)}).returncode == 0
    assert key_file.read_text() == first


def test_an_existing_world_readable_var_folder_and_database_are_narrowed(tmp_path):
    var = tmp_path / "var"
    var.mkdir(mode=0o755)
    (var / "strongroom.sqlite3").touch(mode=0o644)
    var.chmod(0o755)
    (var / "strongroom.sqlite3").chmod(0o644)
    assert _settings_import({"STRONGROOM_MODE": "lab", "STRONGROOM_VAR_DIR": str(var)}).returncode == 0
    assert oct(var.stat().st_mode & 0o777) == "0o700"
    assert oct((var / "strongroom.sqlite3").stat().st_mode & 0o777) == "0o600"


def test_a_master_key_generated_before_keys_were_hex_is_still_taken(tmp_path):
    """Installations made in lab mode before this change hold a 48-byte base64url key that sealed their
    secrets and store keys: refusing it would lock them out of their own backups."""
    import secrets

    var = tmp_path / "var"
    var.mkdir(mode=0o700)
    (var / "master_key").write_text(secrets.token_urlsafe(48))
    (var / "master_key").chmod(0o600)
    result = _settings_import({"STRONGROOM_MODE": "lab", "STRONGROOM_VAR_DIR": str(var)})
    assert result.returncode == 0, result.stderr


def test_security_imports_no_other_app():
    offenders = []
    for path in (ROOT / "security").rglob("*.py"):
        text = path.read_text()
        for app in ("portal", "vaults", "protection", "labs"):
            if f"from {app}" in text or f"import {app}" in text:
                offenders.append(f"{path.relative_to(ROOT)} imports {app}")
    assert offenders == []


def test_imports_run_one_way():
    """labs -> protection -> vaults -> portal -> security: nothing imports upwards."""
    above = {"security": ("portal", "vaults", "protection", "labs"), "portal": ("vaults", "protection", "labs"),
             "vaults": ("protection", "labs"), "protection": ("labs",)}
    offenders = []
    for app, forbidden in above.items():
        for path in (ROOT / app).rglob("*.py"):
            text = path.read_text()
            for upper in forbidden:
                if f"from {upper}" in text or f"import {upper}" in text:
                    offenders.append(f"{path.relative_to(ROOT)} imports {upper}")
    assert offenders == []
