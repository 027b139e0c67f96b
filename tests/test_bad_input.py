"""No server error from bad input (issue 13): every URL, every persona, the parameters it reads.

Every URL pattern comes from the resolver and is opened with real arguments in the entry-point world
(`tests.test_entry_points` enumerates and builds them; this test reuses that). For each URL the test
first records which query-string and form keys the view reads (a valid GET and a valid POST with the
form's fields, as the entry-point proof posts them), then sends each key one bad value at a time:
malformed and empty ids, a 2**70 integer, a Unicode digit that ``str.isdigit`` accepts but ``int``
refuses, 50,000 characters, NUL with right-to-left marks and an emoji, and an encoded lone surrogate.
The trainer (Owner at the root, who reaches every code path) gets each key with each bad value; every
other persona gets each bad value in every key at once. Path arguments get a 2**70 id. Each request
runs in a savepoint that is rolled back, so the world stays the same for the next one. Any 5xx (or an
exception out of a view) fails the test, with the URL, persona and value that caused it.
"""

from __future__ import annotations

import contextlib
import os
import time
from urllib.parse import quote

import pytest
from django.db import transaction
from django.http import QueryDict
from django.urls import NoReverseMatch, reverse

from tests._entry_world import add_class, build_world, entry_lab_registered, form_data
from tests.test_entry_points import WIZARD_HELPERS, overrides, url_args, url_patterns, wizard_query

pytestmark = pytest.mark.django_db

@pytest.fixture(autouse=True)
def _entry_lab():
    """The entry-point world's training lab is offered; its sandboxes leave nothing on the lab cluster."""
    with entry_lab_registered():
        yield


PERSONAS = ("trainer", "backup-admin", "backup-operator", "security-admin", "reader", "outsider")

# Representative bad values, already percent-encoded for a query string or a urlencoded body (the
# lone surrogate can only travel as its UTF-8-style bytes, which Django decodes with replacement).
BAD_VALUES = {
    "empty": "",
    "malformed": quote("abc-not-an-id"),
    "huge": str(2**70),
    "negative": "-1",
    "unicode-digit": quote("²"),  # "²".isdigit() is True, int("²") raises
    "long": "x" * 50_000,
    "odd": quote("a\x00b\u202e\u200fgnp.exe 💾"),
    "surrogate": "%ED%A0%80",
}
SKIP = {"logout"}  # ending the session would sign the client out mid-run
NOT_FUZZED = {"csrfmiddlewaretoken"}
TRACE = os.environ.get("BAD_INPUT_TRACE")  # print each URL's time and each failure as it happens


@contextlib.contextmanager
def reads_recorded():
    """Record every key a view reads from a QueryDict (request.GET/POST and forms bound to them)."""
    keys: set[str] = set()
    names = ("get", "getlist", "__getitem__", "__contains__")

    def wrap(original):
        def method(self, key, *args, **kwargs):
            if isinstance(key, str):
                keys.add(key)
            return original(self, key, *args, **kwargs)
        return method

    for name in names:  # on QueryDict only: the URL resolver keeps its own MultiValueDicts
        setattr(QueryDict, name, wrap(getattr(QueryDict, name)))
    try:
        yield keys
    finally:
        for name in names:
            delattr(QueryDict, name)


def _encode(pairs) -> str:
    """pairs of (key, already-encoded value) -> a query string."""
    return "&".join(f"{quote(k)}={v}" for k, v in pairs)


def _plain(data: dict):
    for key, value in data.items():
        for v in value if isinstance(value, list) else [value]:
            if v is not None and not hasattr(v, "read"):
                yield key, quote(str(v))


class Probe:
    def __init__(self, client):
        self.client = client
        self.failures: list[str] = []
        self.requests = 0

    def send(self, who: str, key: str, method: str, path: str, body: str, what: str):
        self.requests += 1
        headers = {"HTTP_HX_REQUEST": "true"} if key in WIZARD_HELPERS else {}
        try:
            with transaction.atomic():
                if method == "GET":
                    response = self.client.get(f"{path}?{body}" if body else path, **headers)
                else:
                    response = self.client.post(path, body, content_type="application/x-www-form-urlencoded",
                                                **headers)
                transaction.set_rollback(True)
        except Exception as exc:  # noqa: BLE001  (an exception out of a view is a 500: reported with the rest)
            self.fail(f"{method} {key} as {who} with {what}: {type(exc).__name__}: {str(exc)[:200]}")
            return None
        if response.status_code >= 500:
            self.fail(f"{method} {key} as {who} with {what}: status {response.status_code}")
        return response

    def fail(self, message):
        self.failures.append(message)
        if TRACE:
            print("FAIL", message, flush=True)


def _valid_get(key, w) -> list:
    query = wizard_query(key, w).lstrip("?")
    return [tuple(part.split("=", 1)) for part in query.split("&") if part]


def _valid_post(client, key, path, w) -> dict:
    """The form a browser would post (its fields with their defaults, and what a person picks)."""
    html = ""
    with transaction.atomic():
        page = client.get(path + wizard_query(key, w))
        if page.status_code == 200 and "html" in page.get("Content-Type", ""):
            html = page.content.decode(errors="replace")
        transaction.set_rollback(True)
    data = form_data(html, path) or {}
    data.update(overrides(key, w, data))
    data.pop("confirm_name", None)  # never delete the world by accident: a deletion is tried only with bad names
    return data


def _bad_path(key: str, w) -> str | None:
    args = url_args(key, w)
    if not args:
        return None
    bad = [2**70 if isinstance(a, int) else "x\u202e💾" * 20 if isinstance(a, str) else a for a in args]
    try:
        return reverse(key, args=bad)
    except NoReverseMatch:  # a slug argument (a lab, a step): an unknown slug, as long as a slug may be
        return reverse(key, args=["no-such-" + "x" * 200 if isinstance(a, str) else b for a, b in zip(args, bad)])


def record_keys(probe: Probe, client, who: str, key: str, w) -> dict:
    """Send the URL valid input and note which keys its view reads: {"GET": (keys, base), "POST": ...}."""
    path = reverse(key, args=url_args(key, w))
    valid_get = _valid_get(key, w)
    post = _valid_post(client, key, path, w)
    with reads_recorded() as get_keys:
        probe.send(who, key, "GET", path, _encode(valid_get), "valid input")
    with reads_recorded() as post_keys:
        probe.send(who, key, "POST", path, _encode(_plain(post)), "valid input")
    post_keys |= set(post)
    return {"path": path, "GET": (sorted(get_keys - NOT_FUZZED), dict(valid_get)),
            "POST": (sorted(post_keys - NOT_FUZZED), dict(_plain(post)))}


LABELS = list(BAD_VALUES)
OTHERS = [label for label in LABELS if label != "huge"]


def fuzz_each_key(probe: Probe, who: str, key: str, plan: dict, w, seed: int):
    """Each key alone: a 2**70 id, and one of the other bad values (a different one from key to key)."""
    for method in ("GET", "POST"):
        keys, base = plan[method]
        for i, name in enumerate(keys):
            for label in ("huge", OTHERS[(seed + i) % len(OTHERS)]):
                pairs = [(k, v) for k, v in base.items() if k != name] + [(name, BAD_VALUES[label])]
                probe.send(who, key, method, plan["path"], _encode(pairs), f"{name}={label}")
    if bad_path := _bad_path(key, w):
        probe.send(who, key, "GET", bad_path, "", "a 2**70 / odd path argument")
        probe.send(who, key, "POST", bad_path, "", "a 2**70 / odd path argument")


def fuzz_every_key(probe: Probe, who: str, key: str, plan: dict, seed: int):
    """Every key at once, with one bad value (a different one from URL to URL and persona to persona)."""
    label = LABELS[seed % len(LABELS)]
    for method in ("GET", "POST"):
        keys, _base = plan[method]
        if keys:
            probe.send(who, key, method, plan["path"], _encode([(k, BAD_VALUES[label]) for k in keys]),
                       f"every key={label}")


def test_no_server_error_from_bad_input_on_any_url_as_any_persona(client, lab, monkeypatch):
    """GIVEN the entry-point world WHEN every URL is sent malformed ids, huge integers, long and odd
    Unicode values in each key it reads, as each persona THEN no response is a server error."""
    from protection.jobs import runner as jobs

    monkeypatch.setattr(jobs, "enqueue", lambda job: None)  # nothing runs in the background
    w = add_class(build_world(lab))
    probe = Probe(client)
    keys = [k for k, _route, _p in url_patterns() if not k.startswith("admin:") and k not in SKIP]
    started, cpu_started = time.monotonic(), time.process_time()
    plans = {}
    for n, who in enumerate(PERSONAS):
        principal = lab.trainer if who == "trainer" else lab.personas[who].principal
        client.logout()
        client.force_login(principal.user)
        for seed, key in enumerate(keys, start=n):
            t0, n0 = time.monotonic(), probe.requests
            if who == "trainer":  # Owner at the root: reaches every code path, so every key alone
                plans[key] = record_keys(probe, client, who, key, w)
                fuzz_each_key(probe, who, key, plans[key], w, seed)
            else:
                fuzz_every_key(probe, who, key, plans[key], seed)
            if TRACE:
                print(f"{who} {key}: {probe.requests - n0} requests, {time.monotonic() - t0:.2f} s", flush=True)
    elapsed = time.monotonic() - started
    print(f"bad-input probe: {probe.requests} requests on {len(keys)} URLs in {elapsed:.1f} s "
          f"({time.process_time() - cpu_started:.1f} s of CPU)")
    assert not probe.failures, f"{len(probe.failures)} server errors:\n" + "\n".join(probe.failures[:80])
    assert probe.requests > 10 * len(keys)  # it really sent bad values everywhere


HUGE = str(2**70)


def test_the_reported_bad_inputs_get_a_clear_answer(client, lab):
    """GIVEN the entry-point world WHEN the inputs of the issue's probe are sent (each was a 500) THEN
    each gets a 400 or 404 that says what was wrong and what to do, or an empty list naming the filter."""
    import uuid

    w = build_world(lab)
    security_admin = lab.personas["security-admin"].principal

    def page(response, status, *texts):
        body = response.content.decode()
        assert response.status_code == status, (response.status_code, body[:500])
        for text in texts:
            assert text in body, (text, body[:2000])
        return body

    # A malformed or empty access request id on Approvals.
    client.force_login(security_admin.user)
    for bad in ("", "not-a-uuid", HUGE):
        page(client.post(reverse("mua:approvals"), {"request_id": bad, "decision": "approve"}), 400,
             "The access request sent with this form is not valid", "Reload the page and choose it again")
    page(client.post(reverse("mua:approvals"), {"request_id": str(uuid.uuid4()), "decision": "approve"}), 404)

    # A malformed recovery point on the Restore parameters tab's Validate and Assign missing roles.
    client.force_login(lab.trainer.user)
    for name in ("protection:restore_validate", "protection:restore_assign_roles"):
        page(client.post(reverse(name), {"instance": str(w.instance.pk), "point": "abc"}, HTTP_HX_REQUEST="true"),
             400, "The recovery point sent with this form is not valid")
        page(client.post(reverse(name), {"instance": str(w.instance.pk), "point": str(uuid.uuid4())},
                         HTTP_HX_REQUEST="true"), 404, "Choose the recovery point again")

    # Filters that name nothing: an empty list that says which filter; huge pages: the last page.
    page(client.get(reverse("portal:resource_group_list"), {"subscription": "abc"}), 200,
         "No resource groups to show", "The subscription filter “abc” names no subscription")
    lists = {
        "protection:job_list": ("vault", "No jobs match these filters"),
        "protection:instance_list": ("vault", "No backup instances match these filters"),
        "protection:policy_list": ("vault", "No backup policies match these filters"),
        "vaults:vault_list": ("subscription", "No Backup vaults match these filters"),
    }
    for name, (key, empty) in lists.items():
        page(client.get(reverse(name), {key: HUGE}), 200, empty, f"filter “{HUGE}” names no")
        page(client.get(reverse(name), {"page": HUGE}), 200)
    page(client.get(reverse("vaults:vault_list"), {"resource_group": HUGE}), 200, "No Backup vaults match")
    page(client.get(reverse("protection:vault_jobs", args=[w.vault.pk]), {"page": HUGE, "items": "1"}), 200)
    for name, args in (("protection:vault_instances", [w.vault.pk]), ("protection:vault_policies", [w.vault.pk])):
        page(client.get(reverse(name, args=args), {"page": HUGE, "vault": HUGE}), 200)
    # The create-vault form's lists (resource groups of a subscription, the name check).
    page(client.get(reverse("vaults:resource_group_options"), {"subscription": HUGE}, HTTP_HX_REQUEST="true"), 200)
    page(client.get(reverse("vaults:check_name"), {"name": "bv-x", "resource_group": HUGE, "subscription": HUGE},
                    HTTP_HX_REQUEST="true"), 200)
    page(client.get(reverse("vaults:vault_create"), {"subscription": HUGE}), 200)

    # A 50,000-character (or NUL) search.
    page(client.get(reverse("portal:search"), {"q": "x" * 50_000}), 400, "use at most 200 characters")
    page(client.get(reverse("portal:search"), {"q": "a\x00b"}), 400, "contains a NUL character")
    page(client.get(reverse("vaults:vault_list"), {"q": "x" * 50_000}), 400, "use at most 200 characters")

    # An unknown lab persona.
    for bad in ("abc", HUGE, "999999"):
        page(client.post(reverse("portal:switch_persona"), {"persona": bad}), 400, "persona")


@pytest.mark.parametrize("value, expected", [
    ("42", 42), (" 7 ", 7), (7, 7), ("0", None), ("-1", None), ("²", None), ("١٢", None), ("1.5", None),
    (str(2**63 - 1), 2**63 - 1), (str(2**63), None), (HUGE, None), ("", None), (None, None), (True, None),
])
def test_parse_id_takes_only_what_a_bigint_key_can_hold(value, expected):
    from portal.shortcuts import parse_id

    assert parse_id(value) == expected


@pytest.mark.parametrize("value, expected", [
    ("3", 3), ("", 1), ("abc", 1), ("0", 1), ("-2", 1), ("²", 1), (HUGE, 10**6), ("999999999", 10**6),
])
def test_page_number_never_overflows(value, expected):
    from portal.shortcuts import page_number

    assert page_number(value) == expected


def test_a_tampered_wizard_form_is_a_400_page_that_says_to_reload(client, lab):
    """Django answers a wizard post without its management data (SuspiciousOperation) with 400: the page
    says what happened and what to do."""
    client.force_login(lab.trainer.user)
    response = client.post(reverse("vaults:vault_create"), {"basics-name": "bv-x"})
    assert response.status_code == 400
    body = response.content.decode()
    assert "Part of what the page sent was missing or changed" in body and "Reload the page and try again" in body
