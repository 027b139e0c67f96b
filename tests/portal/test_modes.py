"""Two modes (issue 18): lab mode (demo users, labs, personas, the lab clock, said by a "Lab" badge) and
production mode (none of those; keys and hosts required; `check --deploy` clean), with friendly error pages
and one Content-Security-Policy in both, generated demo passwords and `create_owner` for the first Owner."""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from security.models import Principal, RoleAssignment

ROOT = Path(__file__).resolve().parents[2]
STRIPPED = {"SECRET_KEY", "STRONGROOM_MASTER_KEY", "DEBUG", "STRONGROOM_MODE", "ALLOWED_HOSTS", "DJANGO_SETTINGS_MODULE",
            "STRONGROOM_DEMO_PASSWORD", "DATABASE_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"}


def _production_env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in STRIPPED}
    env.update({"STRONGROOM_MODE": "production", "STRONGROOM_VAR_DIR": str(tmp_path / "var"),
                "SECRET_KEY": secrets.token_urlsafe(50), "STRONGROOM_MASTER_KEY": secrets.token_hex(32),
                "ALLOWED_HOSTS": "backup.example.com", "DJANGO_SETTINGS_MODULE": "portal.settings",
                "STRONGROOM_SECONDARY_ROOT": str(tmp_path / "secondary-disk")})
    return env


def test_check_deploy_is_clean_in_production(tmp_path):
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                            env=_production_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced)." and result.stderr == ""


def test_production_refuses_seed_lab(tmp_path):
    env = _production_env(tmp_path)  # refused before the database is touched: no migration needed
    result = subprocess.run([sys.executable, "manage.py", "seed_lab"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0 and "runs only in lab mode" in result.stderr and "create_owner" in result.stderr


def test_seed_lab_makes_nothing_outside_lab_mode(db, settings):
    settings.STRONGROOM_LAB_MODE = False
    with pytest.raises(CommandError, match="runs only in lab mode"):
        call_command("seed_lab", stdout=io.StringIO())
    assert not get_user_model().objects.exists() and not RoleAssignment.objects.exists()


def test_generated_demo_passwords_differ_per_installation_and_sit_in_a_private_file(db, settings, tmp_path):
    from portal.lab import seed_tenancy

    settings.STRONGROOM_DEMO_PASSWORD = ""
    settings.STRONGROOM_DEMO_PASSWORDS_FILE = tmp_path / "one" / "demo-passwords.txt"
    seed_tenancy()
    listed = _passwords(settings.STRONGROOM_DEMO_PASSWORDS_FILE)
    assert oct(settings.STRONGROOM_DEMO_PASSWORDS_FILE.stat().st_mode & 0o777) == "0o600"
    assert {"trainer", "trainee", "backup-admin", "security-admin"} <= set(listed)
    User = get_user_model()
    for username, password in listed.items():
        assert User.objects.get(username=username).check_password(password), username
        assert password != "strongroom-lab" and len(password) >= 15
    assert len(set(listed.values())) == len(listed)  # one per account
    # Another installation: the same accounts get other passwords.
    from portal.lab import demo_password_for

    settings.STRONGROOM_DEMO_PASSWORDS_FILE = tmp_path / "two" / "demo-passwords.txt"
    other = {name: demo_password_for(name) for name in listed}
    assert all(other[name] != listed[name] for name in listed)
    # Seeding again changes no password and keeps the file.
    settings.STRONGROOM_DEMO_PASSWORDS_FILE = tmp_path / "one" / "demo-passwords.txt"
    seed_tenancy()
    assert _passwords(settings.STRONGROOM_DEMO_PASSWORDS_FILE) == listed


def _passwords(path: Path) -> dict:
    lines = [line.split() for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return {name: word for name, word in lines}


def test_a_classroom_password_is_used_when_set(db, settings, tmp_path):
    from portal.lab import seed_tenancy

    settings.STRONGROOM_DEMO_PASSWORD = "our-class-2026-password"
    settings.STRONGROOM_DEMO_PASSWORDS_FILE = tmp_path / "demo-passwords.txt"
    seed_tenancy()
    assert get_user_model().objects.get(username="trainer").check_password("our-class-2026-password")
    assert not settings.STRONGROOM_DEMO_PASSWORDS_FILE.exists()


def test_the_sign_in_page_names_the_file_never_a_password(client, lab, settings):
    page = client.get("/signin/").content.decode()
    assert "Lab sign-ins" in page and settings.STRONGROOM_DEMO_PASSWORD not in page
    assert 'class="lab-mode-badge"' in page
    settings.STRONGROOM_DEMO_PASSWORD = ""
    page = client.get("/signin/").content.decode()
    assert str(settings.STRONGROOM_DEMO_PASSWORDS_FILE) in page


def test_the_lab_badge_is_on_every_page_in_lab_mode_only(client, lab, settings):
    client.force_login(lab.trainer.user)
    assert 'class="lab-mode-badge"' in client.get("/").content.decode()
    settings.STRONGROOM_LAB_MODE = False
    page = client.get("/").content.decode()
    assert 'class="lab-mode-badge"' not in page and "persona-select" not in page


def test_not_found_is_the_portal_s_page_never_the_url_conf(client, lab):
    for signed_in in (False, True):
        if signed_in:
            client.force_login(lab.personas["outsider"].principal.user)
        response = client.get("/no/such/page/")
        page = response.content.decode()
        assert response.status_code == 404 and "Not found" in page and "Strongroom" in page
        assert "URLconf" not in page and "labs/" not in page


@override_settings(ROOT_URLCONF="tests.portal._failing_urls")
def test_a_server_error_is_the_portal_s_page(client):
    client.raise_request_exception = False
    response = client.get("/fail/")
    page = response.content.decode()
    assert response.status_code == 500 and "Something went wrong on our side" in page
    assert "Traceback" not in page and "ZeroDivisionError" not in page


def test_every_page_has_the_content_security_policy(client, lab):
    for url in ("/signin/", "/no/such/page/"):
        policy = client.get(url)["Content-Security-Policy"]
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
        assert directives["script-src"] == "'self'"
        assert "unsafe-inline" not in directives["script-src"] and "unsafe-eval" not in policy
        assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"


def test_no_template_has_an_inline_script_or_handler():
    """The policy allows no inline script: behaviour is declared with data- attributes (static/strongroom.js)."""
    import re

    offenders = []
    for folder in ("templates", "portal", "vaults", "protection", "security", "labs"):
        for path in (ROOT / folder).rglob("*.html"):
            text = path.read_text()
            for pattern in (r"<script(?![^>]*\bsrc=)[^>]*>", r"\son[a-z]+\s*=", r"\shx-on[:-]", r"javascript:", *HTMX_EVAL):
                offenders += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in re.finditer(pattern, text)]
    assert offenders == []


# htmx features that evaluate code (refused with allowEval off, so they would silently do nothing): a trigger's
# [filter], js: values in hx-vals or hx-headers, hx-vars.
HTMX_EVAL = (r"hx-trigger=(\"[^\"]*\[|'[^']*\[)", r"hx-(vals|headers)=[\"']\s*(js|javascript):", r"\shx-vars\s*=")


def test_no_python_built_html_has_an_inline_script_or_handler():
    """HTML written in Python (format_html, mark_safe, template tags) follows the same rule as templates."""
    import re

    offenders = []
    for folder in ("portal", "vaults", "protection", "security", "labs"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            for pattern in (r"<script(?![^>]*\bsrc=)[^>]*>", r"<[a-z][^<>]*\son[a-z]+\s*=", r"\shx-on[:-]", *HTMX_EVAL):
                offenders += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in re.finditer(pattern, text)]
    assert offenders == []


# --- create_owner -----------------------------------------------------------------------------------------


def test_create_owner_from_the_environment(db, monkeypatch):
    monkeypatch.setenv("STRONGROOM_OWNER_USERNAME", "ada")
    monkeypatch.setenv("STRONGROOM_OWNER_PASSWORD", "correct horse battery staple 42")
    monkeypatch.setenv("STRONGROOM_OWNER_NAME", "Ada Admin")
    out = io.StringIO()
    call_command("create_owner", "--no-input", stdout=out)
    assert "Owner at the root scope" in out.getvalue()
    user = get_user_model().objects.get(username="ada")
    assert user.check_password("correct horse battery staple 42") and user.is_staff and not user.is_superuser
    [assignment] = RoleAssignment.objects.all()
    assert assignment.role.name == "Owner" and assignment.scope == "/" and assignment.principal.display_name == "Ada Admin"
    # Only the first: a second Owner is IAM's business.
    monkeypatch.setenv("STRONGROOM_OWNER_USERNAME", "eve")
    with pytest.raises(CommandError, match="already has an Owner"):
        call_command("create_owner", "--no-input", stdout=io.StringIO())
    assert not get_user_model().objects.filter(username="eve").exists()


def test_create_owner_reads_the_password_from_a_file_and_refuses_a_weak_one(db, monkeypatch, tmp_path):
    monkeypatch.setenv("STRONGROOM_OWNER_USERNAME", "ada")
    monkeypatch.setenv("STRONGROOM_OWNER_PASSWORD", "short")
    with pytest.raises(CommandError, match="No Owner was made: password"):
        call_command("create_owner", "--no-input", stdout=io.StringIO())
    assert not get_user_model().objects.exists() and not Principal.objects.filter(kind="User").exists()
    monkeypatch.delenv("STRONGROOM_OWNER_PASSWORD")
    (tmp_path / "pw").write_text("a passphrase kept in a file 9\n")
    monkeypatch.setenv("STRONGROOM_OWNER_PASSWORD_FILE", str(tmp_path / "pw"))
    call_command("create_owner", "--no-input", stdout=io.StringIO())
    assert get_user_model().objects.get(username="ada").check_password("a passphrase kept in a file 9")


def test_create_owner_asks_interactively(db, monkeypatch):
    from portal.management.commands import create_owner

    answers = iter(["grace", "Grace Hopper", "grace@example.com"])
    passwords = iter(["first try 1234567", "typo try 1234567", "compiler pioneer 1952", "compiler pioneer 1952"])
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    monkeypatch.setattr(create_owner.getpass, "getpass", lambda prompt: next(passwords))
    err = io.StringIO()
    call_command("create_owner", stdout=io.StringIO(), stderr=err)
    assert "differ" in err.getvalue()
    user = get_user_model().objects.get(username="grace")
    assert user.email == "grace@example.com" and user.check_password("compiler pioneer 1952")


def test_create_owner_needs_a_username_and_password_without_input(db, monkeypatch):
    for name in ("STRONGROOM_OWNER_USERNAME", "STRONGROOM_OWNER_PASSWORD", "STRONGROOM_OWNER_PASSWORD_FILE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(CommandError, match="STRONGROOM_OWNER_USERNAME"):
        call_command("create_owner", "--no-input", stdout=io.StringIO())
