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


def _settings_import(env):
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "STRONGROOM_MASTER_KEY", "DEBUG"}}
    clean.update(env)
    return subprocess.run([sys.executable, "-c", "import portal.settings"], cwd=ROOT, env=clean,
                          capture_output=True, text=True)


def test_production_refuses_to_start_without_keys(tmp_path):
    result = _settings_import({"DEBUG": "false", "STRONGROOM_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "SECRET_KEY is required when DEBUG is off" in result.stderr


def test_production_refuses_a_missing_master_key(tmp_path):
    result = _settings_import({"DEBUG": "false", "SECRET_KEY": "x" * 50, "STRONGROOM_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0 and "STRONGROOM_MASTER_KEY is required" in result.stderr


def test_production_starts_with_both_keys(tmp_path):
    result = _settings_import({"DEBUG": "false", "SECRET_KEY": "x" * 50, "STRONGROOM_MASTER_KEY": "y" * 50,
                               "STRONGROOM_VAR_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr


def test_a_typo_in_a_boolean_fails_loudly(tmp_path):
    result = _settings_import({"DEBUG": "maybe", "STRONGROOM_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0 and "DEBUG must be true or false" in result.stderr


def test_debug_generates_keys_once_with_private_permissions(tmp_path):
    assert _settings_import({"DEBUG": "true", "STRONGROOM_VAR_DIR": str(tmp_path)}).returncode == 0
    key_file = tmp_path / "master_key"
    first = key_file.read_text()
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert _settings_import({"DEBUG": "true", "STRONGROOM_VAR_DIR": str(tmp_path)}).returncode == 0
    assert key_file.read_text() == first


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
