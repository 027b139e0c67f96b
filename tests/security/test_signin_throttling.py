"""Sign-in throttling, the Owner's unlock, the activity log and alert of failed sign-ins, sessions and
changing one's own password (issue 18, "Sign-in throttling").

Sign-ins go through the real form (the test client POSTs /signin/ or /admin/login/) from addresses set with
REMOTE_ADDR; each test sets its own known password on the account it tries (never the demo password).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
import time_machine
from django.test import RequestFactory
from django.urls import reverse

from security import operations as ops
from security import signin
from security.models import ActivityLogEntry, Alert, RoleDefinition

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "Correct-horse-battery-47"
WRONG = "not-the-password-9"
HOME = "172.16.5.10"
AWAY = "172.16.5.11"


@pytest.fixture
def person(outsider):
    """The outsider's account, with a password this test knows."""
    user = outsider.user
    user.set_password(PASSWORD)
    user.save()
    return user


def sign_in(client, username, password, address=HOME, path="/signin/"):
    client.logout()
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address)


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def lock_out(client, username, address=HOME, limit=None):
    from django.conf import settings

    for _ in range(limit or settings.AXES_FAILURE_LIMIT):
        response = sign_in(client, username, WRONG, address)
    assert response.status_code == 429, response.status_code  # the last failure locks it, and says so
    return response


def sign_in_failures():
    return ActivityLogEntry.objects.filter(operation=ops.SIGN_IN, status=ActivityLogEntry.Status.FAILED).order_by("id")


# --- the lockout ---------------------------------------------------------------------------------------


def test_the_defaults_lock_a_username_and_address_for_30_minutes_after_5_failures(settings):
    assert settings.AXES_FAILURE_LIMIT == settings.STRONGROOM_SIGNIN_FAILURE_LIMIT == 5
    assert settings.AXES_COOLOFF_TIME == dt.timedelta(minutes=30)
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]
    assert settings.SESSION_COOKIE_AGE == 8 * 3600


def test_after_n_failures_even_the_right_password_is_refused_with_the_lockout_page(client, person):
    for attempt in range(1, 5):
        response = sign_in(client, person.username, WRONG)
        assert response.status_code == 200 and not signed_in(client)
        assert "Please enter a correct username and password" in response.content.decode()
    response = sign_in(client, person.username, WRONG)  # the fifth
    assert response.status_code == 429
    response = sign_in(client, person.username, PASSWORD)
    page = response.content.decode()
    assert response.status_code == 429 and not signed_in(client)
    assert "Sign-in locked" in page and f">{person.username}<" in page and HOME in page
    lockout = signin.lockout_of(person.username, HOME)
    assert lockout.failures == 5 and f"{lockout.until:%Y-%m-%d %H:%M} UTC" in page
    assert "An <strong>Owner</strong> can unlock it" in page and "Security &gt; Sign-in lockouts" in page
    assert 0 < int(response["Retry-After"]) <= 30 * 60 + 1
    assert 'href="/static/strongroom.css"' in page or "strongroom.css" in page  # the portal's look


def test_another_address_and_another_username_still_get_in(client, person):
    lock_out(client, person.username, HOME)
    response = sign_in(client, person.username, PASSWORD, AWAY)
    assert response.status_code == 302 and response["Location"] == reverse("portal:home") and signed_in(client)
    # Another username at the locked address is not locked either.
    assert signin.lockout_of("backup-admin", HOME) is None


@pytest.mark.date_sensitive
def test_the_lockout_ends_by_itself_after_the_cool_off(client, person):
    import time_machine

    lock_out(client, person.username, HOME)
    assert sign_in(client, person.username, PASSWORD).status_code == 429
    with time_machine.travel(dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=31)):
        assert signin.current_lockouts() == []
        assert sign_in(client, person.username, PASSWORD).status_code == 302 and signed_in(client)


def test_the_admin_sign_in_is_throttled_too(client, trainer):
    user = trainer.user
    user.set_password(PASSWORD)
    user.save()
    for _ in range(4):
        assert sign_in(client, user.username, WRONG, path="/admin/login/").status_code == 200
    assert sign_in(client, user.username, WRONG, path="/admin/login/").status_code == 429
    response = sign_in(client, user.username, PASSWORD, path="/admin/login/")
    assert response.status_code == 429 and "Sign-in locked" in response.content.decode() and not signed_in(client)
    # The portal's sign-in counts the same failures: the same username and address is locked there too.
    assert sign_in(client, user.username, PASSWORD).status_code == 429


def test_the_limit_and_cool_off_follow_the_settings(client, person, settings):
    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = dt.timedelta(minutes=3)
    assert sign_in(client, person.username, WRONG).status_code == 200
    assert sign_in(client, person.username, WRONG).status_code == 429
    lockout = signin.lockout_of(person.username, HOME)
    assert lockout.failures == 2 and lockout.until - lockout.last_attempt == dt.timedelta(minutes=3)


def test_a_successful_sign_in_forgets_earlier_failures(client, person):
    for _ in range(4):
        sign_in(client, person.username, WRONG)
    assert sign_in(client, person.username, PASSWORD).status_code == 302
    for _ in range(4):  # four more: still below the limit, since the success reset the count
        assert sign_in(client, person.username, WRONG).status_code == 200


# --- unlocking -----------------------------------------------------------------------------------------


def test_an_owner_sees_the_lockout_and_unlocking_restores_sign_in(client, person, trainer):
    lock_out(client, person.username, HOME)
    client.force_login(trainer.user)
    page = client.get(reverse("portal:signin_lockouts"))
    html = page.content.decode()
    assert page.status_code == 200 and person.username in html and HOME in html and ">5<" in html
    assert 'href="/signin-lockouts/"' in client.get(reverse("portal:home")).content.decode()  # in the navigation
    response = client.post(reverse("portal:signin_unlock"), {"username": person.username, "ip_address": HOME})
    assert response.status_code == 302
    followed = client.get(response["Location"]).content.decode()
    assert f"Unlocked &#x27;{person.username}&#x27; at {HOME}" in followed and "No lockouts" in followed
    entry = ActivityLogEntry.objects.get(operation=ops.SIGN_IN_LOCKOUT_DELETE)
    assert entry.status == "Succeeded" and entry.principal == trainer and entry.scope == "/"
    assert entry.details["username"] == person.username and entry.details["ipAddress"] == HOME
    assert entry.operation_name == "Unlock sign-in"
    assert sign_in(client, person.username, PASSWORD).status_code == 302 and signed_in(client)


def test_unlocking_what_is_not_locked_says_so(client, trainer):
    client.force_login(trainer.user)
    response = client.post(reverse("portal:signin_unlock"), {"username": "nobody-locked", "ip_address": HOME},
                           follow=True)
    assert "is not locked out at the address" in response.content.decode()
    bad = client.post(reverse("portal:signin_unlock"), {"username": "x", "ip_address": "not-an-address"})
    assert bad.status_code == 400 and "is not an IP address" in bad.content.decode()


def test_only_an_owner_at_the_root_may_unlock(client, person, trainer, security_admin, reader, lab):
    from security import services

    lock_out(client, person.username, HOME)
    # Owner of a subscription (the security admin) and the Reader of a subscription: not at the root.
    for principal in (security_admin, reader):
        client.force_login(principal.user)
        assert client.get(reverse("portal:signin_lockouts")).status_code == 403
        assert 'href="/signin-lockouts/"' not in client.get(reverse("portal:home")).content.decode()
        refused = client.post(reverse("portal:signin_unlock"), {"username": person.username, "ip_address": HOME})
        assert refused.status_code == 403 and "Microsoft.Authorization/signInLockouts/delete" in refused.content.decode()
    # Contributor at the root reads the lockouts but may not unlock (its notActions exclude Authorization deletes).
    services.assign_role(trainer, assignee=reader, role=RoleDefinition.objects.get(name="Contributor"), scope="/")
    client.force_login(reader.user)
    page = client.get(reverse("portal:signin_lockouts")).content.decode()
    assert person.username in page and "Unlock would be refused for you" in page and 'name="ip_address"' not in page
    assert client.post(reverse("portal:signin_unlock"),
                       {"username": person.username, "ip_address": HOME}).status_code == 403
    assert signin.lockout_of(person.username, HOME) is not None  # still locked
    refusals = ActivityLogEntry.objects.filter(operation=ops.SIGN_IN_LOCKOUT_DELETE, status="Failed")
    assert refusals.count() == 3 and set(refusals.values_list("sub_status", flat=True)) == {"Forbidden"}


# --- the activity log and the alert --------------------------------------------------------------------


def test_failed_and_locked_out_sign_ins_are_logged_without_the_password(client, person):
    from axes.models import AccessAttempt

    lock_out(client, person.username, HOME)
    sign_in(client, person.username, PASSWORD)  # refused: locked out
    sign_in(client, "no-such-user", WRONG, AWAY)
    entries = list(sign_in_failures())
    assert len(entries) == 7 and all(e.status == "Failed" and e.scope == "/" for e in entries)
    first, fifth, refused, stranger = entries[0], entries[4], entries[5], entries[6]
    assert first.details["username"] == person.username and first.details["ipAddress"] == HOME
    assert first.principal is None and first.caller == f"{person.username} (not signed in)"
    assert first.sub_status == "Unauthorized" and "failure 1 of 5 before a lockout" in first.message
    assert fifth.details["lockedOut"] and "is now locked out at this address until" in fifth.message
    assert refused.sub_status == "TooManyRequests" and "Sign-in refused" in refused.message
    assert refused.details["lockedOut"] and "The password was not checked" in refused.message
    assert stranger.details == {**stranger.details, "username": "no-such-user", "ipAddress": AWAY, "knownUser": False}
    assert first.details["knownUser"] is True and first.operation_name == "Sign in"
    for text in [repr(e.details) + e.message for e in entries] + list(AccessAttempt.objects.values_list("post_data", flat=True)):
        assert PASSWORD not in text and WRONG not in text
    # The activity log page lists them for an Owner at the root.
    client.force_login(person.__class__.objects.get(username="trainer"))
    page = client.get(reverse("portal:activity_log") + "?operation=Sign+in&status=Failed").content.decode()
    assert f"{person.username} (not signed in)" in page and "no-such-user (not signed in)" in page


def test_a_burst_of_failures_raises_one_alert(client, person, settings):
    settings.STRONGROOM_SIGNIN_BURST_FAILURES = 6
    settings.STRONGROOM_SIGNIN_BURST_MINUTES = 5
    for address in (HOME, AWAY, "172.16.5.12"):  # 5 each: locked at each address, and the burst goes on
        for _ in range(5):
            sign_in(client, person.username, WRONG, address)
    [alert] = Alert.objects.filter(name=signin.BURST_ALERT)
    assert alert.state == "New" and alert.severity == "Sev1" and alert.affected_resource_id == "/"
    assert alert.details["burst"] == f"username:{person.username}" and alert.details["failures"] == 15
    assert alert.details["lastAddress"] == "172.16.5.12"
    assert f"failed sign-ins for the username '{person.username}' within 5 minutes" in alert.description
    # Closed, the next burst raises a new one.
    Alert.objects.filter(pk=alert.pk).update(state=Alert.State.CLOSED)
    sign_in(client, person.username, WRONG, "172.16.5.13")
    assert Alert.objects.filter(name=signin.BURST_ALERT).count() == 2


def test_many_usernames_failing_raise_one_installation_alert(client, person, settings):
    settings.STRONGROOM_SIGNIN_BURST_FAILURES = 4
    for number in range(9):
        sign_in(client, f"guess-{number}", WRONG, f"172.16.6.{number}")
    [alert] = Alert.objects.filter(name=signin.BURST_ALERT)
    assert alert.details["burst"] == "installation" and alert.details["failures"] == 9
    assert "across the installation" in alert.description


def test_failures_below_the_burst_raise_no_alert(client, person):
    lock_out(client, person.username, HOME)
    assert not Alert.objects.filter(name=signin.BURST_ALERT).exists()


# --- the client's address ------------------------------------------------------------------------------


def test_forwarded_for_counts_only_behind_trusted_proxies(settings):
    request = RequestFactory().post("/signin/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9")
    settings.STRONGROOM_TRUSTED_PROXIES = 0
    assert signin.client_address(request) == "10.0.0.2"  # the header is anyone's to write
    settings.STRONGROOM_TRUSTED_PROXIES = 1
    assert signin.client_address(request) == "203.0.113.9"  # what the one proxy saw, not what the client wrote
    settings.STRONGROOM_TRUSTED_PROXIES = 2
    assert signin.client_address(request) == "6.6.6.6"
    direct = RequestFactory().post("/signin/", REMOTE_ADDR="198.51.100.7")
    assert signin.client_address(direct) == "198.51.100.7"
    junk = RequestFactory().post("/signin/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="<script>, x")
    settings.STRONGROOM_TRUSTED_PROXIES = 1
    assert signin.client_address(junk) == "10.0.0.2"


def test_behind_a_proxy_the_forwarded_address_is_locked_not_the_proxy(client, person, settings):
    settings.STRONGROOM_TRUSTED_PROXIES = 1
    for _ in range(5):
        client.post("/signin/", {"username": person.username, "password": WRONG}, REMOTE_ADDR="10.0.0.2",
                    HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert signin.lockout_of(person.username, "203.0.113.9") is not None
    assert signin.lockout_of(person.username, "10.0.0.2") is None
    response = client.post("/signin/", {"username": person.username, "password": PASSWORD}, REMOTE_ADDR="10.0.0.2",
                           HTTP_X_FORWARDED_FOR="203.0.113.10")
    assert response.status_code == 302  # another client behind the same proxy still gets in


# --- changing one's password ---------------------------------------------------------------------------


def test_every_user_changes_their_own_password(client, person):
    client.force_login(person)
    page = client.get(reverse("portal:password_change"))
    assert page.status_code == 200 and "Current password" in page.content.decode()
    assert 'href="/account/password/"' in client.get(reverse("portal:home")).content.decode()  # in the top bar
    new = "Quiet-lantern-orchard-58"
    response = client.post(reverse("portal:password_change"),
                           {"old_password": PASSWORD, "new_password1": new, "new_password2": new})
    assert response.status_code == 302 and response["Location"] == reverse("portal:home")
    person.refresh_from_db()
    assert person.check_password(new) and signed_in(client)  # this session stays signed in
    entry = ActivityLogEntry.objects.get(operation=ops.PASSWORD_CHANGE)
    assert entry.status == "Succeeded" and entry.principal.user == person and new not in repr(entry.details)
    assert sign_in(client, person.username, new).status_code == 302


def test_a_wrong_current_password_is_refused_and_counts_as_a_failed_sign_in(client, person):
    client.force_login(person)
    new = "Quiet-lantern-orchard-58"
    response = client.post(reverse("portal:password_change"),
                           {"old_password": WRONG, "new_password1": new, "new_password2": new}, REMOTE_ADDR=HOME)
    assert response.status_code == 200 and "current password was entered incorrectly" in response.content.decode()
    person.refresh_from_db()
    assert person.check_password(PASSWORD)
    [entry] = sign_in_failures()
    assert entry.details["path"] == "/account/password/" and entry.principal.user == person
    for _ in range(4):
        response = client.post(reverse("portal:password_change"),
                               {"old_password": WRONG, "new_password1": new, "new_password2": new}, REMOTE_ADDR=HOME)
    assert response.status_code == 429  # guessing it from an open session locks it like the sign-in page


def test_the_admin_s_password_change_is_the_throttled_one(client, person, settings):
    """A staff member's open session is no way around the lockout either: the admin site's Change password
    (Django's form checks the current password without the throttle) leads to the portal's page."""
    person.is_staff = True
    person.save()
    client.force_login(person)
    new = "Quiet-lantern-orchard-58"
    guess = {"old_password": WRONG, "new_password1": new, "new_password2": new}
    response = client.get(reverse("admin:password_change"))
    assert response.status_code == 302 and response["Location"] == reverse("portal:password_change")
    for _ in range(settings.AXES_FAILURE_LIMIT + 1):
        client.post(reverse("admin:password_change"), guess, REMOTE_ADDR=HOME)
    response = client.post(reverse("admin:password_change"), {**guess, "old_password": PASSWORD}, REMOTE_ADDR=HOME)
    person.refresh_from_db()
    assert person.check_password(PASSWORD) and not person.check_password(new)


@pytest.mark.parametrize("new, complaint", [
    ("Short-1a", "at least 12 characters"),
    ("password1234", "too common"),
    ("48213977310562", "entirely numeric"),
    ("outsider-2024", "too similar"),
])
def test_a_weak_new_password_is_refused(client, person, new, complaint):
    client.force_login(person)
    response = client.post(reverse("portal:password_change"),
                           {"old_password": PASSWORD, "new_password1": new, "new_password2": new})
    assert response.status_code == 200 and complaint in response.content.decode()
    person.refresh_from_db()
    assert person.check_password(PASSWORD)


# --- sessions ------------------------------------------------------------------------------------------


@pytest.mark.date_sensitive
def test_the_session_cookie_lasts_the_configured_hours(client, person, settings):
    response = sign_in(client, person.username, PASSWORD)
    assert int(response.cookies[settings.SESSION_COOKIE_NAME]["max-age"]) == 8 * 3600
    settings.SESSION_COOKIE_AGE = 2 * 3600
    moment = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
    with time_machine.travel(moment, tick=False):
        response = sign_in(client, person.username, PASSWORD)
        assert int(response.cookies[settings.SESSION_COOKIE_NAME]["max-age"]) == 2 * 3600
        assert client.session.get_expiry_date() == moment + dt.timedelta(hours=2)


def _settings_values(env: dict) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_") and k not in {"DEBUG", "SECRET_KEY"}}
    clean.update(env)
    code = ("import portal.settings as s; print(s.SESSION_COOKIE_AGE, s.SESSION_EXPIRE_AT_BROWSER_CLOSE, "
            "s.AXES_FAILURE_LIMIT, int(s.AXES_COOLOFF_TIME.total_seconds()), s.STRONGROOM_TRUSTED_PROXIES)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_the_settings_come_from_the_environment(tmp_path):
    assert _settings_values({"STRONGROOM_VAR_DIR": str(tmp_path), "STRONGROOM_MODE": "lab", "STRONGROOM_SESSION_HOURS": "2",
                             "STRONGROOM_SIGNIN_FAILURE_LIMIT": "7", "STRONGROOM_SIGNIN_LOCKOUT_MINUTES": "10",
                             "STRONGROOM_TRUSTED_PROXIES": "1"}) == ["7200", "False", "7", "600", "1"]
    production = _settings_values({"STRONGROOM_VAR_DIR": str(tmp_path), "STRONGROOM_MODE": "production",
                                   "SECRET_KEY": "k" * 50, "STRONGROOM_MASTER_KEY": bytes(range(32)).hex(),
                                   "ALLOWED_HOSTS": "portal.example.org"})
    assert production[:2] == ["28800", "True"]  # 8 hours, and the session ends with the browser


def test_an_ipv6_client_is_counted_by_its_64_and_a_mapped_ipv4_as_ipv4(client, person):
    """One IPv6 client holds a whole /64: trying 5 passwords from each of its addresses gets no further."""
    for n in range(settings_limit()):
        sign_in(client, person.username, WRONG, address=f"2001:db8:1:2::{n + 1:x}")
    locked = sign_in(client, person.username, PASSWORD, address="2001:db8:1:2:ffff::9")
    assert locked.status_code == 429 and not signed_in(client)
    assert sign_in(client, person.username, PASSWORD, address="2001:db8:1:3::1").status_code == 302  # another /64
    assert signin.lockout_address("::ffff:192.0.2.7") == "192.0.2.7"
    assert signin.lockout_address("2001:db8:1:2:aaaa:bbbb:cccc:dddd") == "2001:db8:1:2::"


def settings_limit() -> int:
    from django.conf import settings

    return settings.AXES_FAILURE_LIMIT
