"""Layout in Chromium (issue 13, found in a walk-through): at 1024 px no main page scrolls sideways (wide
tables scroll inside their own container), and at 1440 px the recovery points' actions are not clipped.

The world is a realistic one built through the services (long but valid names, a backed-up instance
with recovery points, a finished job). Set LAYOUT_SHOTS=/some/dir to keep a full-page screenshot of
every page at 1440 and 1024 px, to look at them.
"""

from __future__ import annotations

import io

import pytest

from tests.browser.conftest import screenshots, sign_in

pytestmark = pytest.mark.browser

_shot = screenshots("LAYOUT_SHOTS")
WIDTHS = (1440, 1024)


@pytest.fixture
def layout_world(seeded_lab):
    from portal.inventory import services as inv
    from protection import datasource_types
    from protection.jobs import runner as jobs
    from protection.models import Job
    from protection.backups import services as backups
    from protection.policies import services as policy_services
    from tests.protection._backups_fixtures import sample_files
    from tests.protection._protection_fixtures import protect, spec
    from vaults import services as vault_services

    lab, t = seeded_lab, seeded_lab.trainer
    # Long names are valid names: the pages must hold them (Azure allows 24 / 50 / 150 characters).
    account = inv.create_storage_account(t, resource_group=lab.lab_group, name="sacontosofinancearchive1",
                                         region=lab.region)
    for name in ("quarterly-financial-statements-2026", "images"):
        inv.create_container(t, account, name=name)
    container = account.containers.get(name="quarterly-financial-statements-2026")
    inv.upload_blobs(t, container, [inv.Upload(n, io.BytesIO(d)) for n, d in sample_files(3, count=2, size=500).items()])
    vault = vault_services.create_vault(t, name="bv-contoso-finance-production-westeurope-primary",
                                        region=lab.region, resource_group=lab.lab_group)
    policy = policy_services.create_policy(t, vault=vault, name="adls-daily-retention-thirty-days-finance",
                                           datasource_type=datasource_types.ADLS, spec=spec(datasource_types.ADLS))
    instance = protect(lab, vault, policy, account,
                       name="sacontosofinancearchive1-quarterly-financial-statements-backup-instance")
    for _ in range(2):
        jobs.run(backups.backup_now(t, instance, retention_rule="Default").pk)
    job = Job.objects.filter(instance=instance, operation="Backup").order_by("-start_time").first()
    return {"lab": lab, "vault": vault, "instance": instance, "policy": policy, "job": job, "account": account,
            "point": job.recovery_point}


def _pages(world) -> dict[str, str]:
    from django.urls import reverse

    vault, instance = world["vault"], world["instance"]
    return {
        "home": reverse("portal:home"),
        "vaults": reverse("vaults:vault_list"),
        "vault-overview": reverse("vaults:vault_detail", args=[vault.pk]),
        "instances": reverse("protection:instance_list"),
        "instance-recovery-points": reverse("protection:instance_detail", args=[instance.pk]),
        "jobs": reverse("protection:job_list"),
        "job": reverse("protection:job_detail", args=[world["job"].pk]),
        "policies": reverse("protection:policy_list"),
        "policy": reverse("protection:policy_detail", args=[world["policy"].pk]),
        "iam": f"{reverse('portal:iam')}?scope={vault.resource_id}",
        "activity-log": reverse("portal:activity_log"),
        "alerts": reverse("portal:alert_list"),
        "resource-groups": reverse("portal:resource_group_list"),
        "storage-accounts": reverse("portal:storage_account_list"),
        "elastic-sans": reverse("portal:elastic_san_list"),
        "postgres-servers": reverse("portal:postgres_server_list"),
        "storage-account": reverse("portal:storage_account_detail", args=[world["account"].pk]),
        "recovery-point": reverse("protection:recovery_point_detail", args=[world["point"].pk]),
        "vault-properties": reverse("vaults:vault_properties", args=[vault.pk]),
        "vault-soft-delete": reverse("vaults:vault_soft_delete", args=[vault.pk]),
        "resource-guards": reverse("mua:guard_list"),
        "approvals": reverse("mua:approvals"),
        "search": f"{reverse('portal:search')}?q=backup",
    }


# The innermost elements that reach past the window's right edge (named in a failure, to say what to fix).
CULPRITS = """(width) => {
    const wide = [...document.querySelectorAll('main *')].filter(el => el.getBoundingClientRect().right > width + 0.5);
    const inner = wide.filter(el => ![...el.children].some(c => wide.includes(c)));
    return inner.slice(0, 4).map(el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
        (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).join('.') : '') +
        ' "' + (el.textContent || '').trim().slice(0, 30) + '"');
}"""


def _settle(page):
    page.wait_for_load_state("networkidle")


def test_no_main_page_scrolls_sideways_at_1024_px(page, live_server, layout_world):
    sign_in(page, live_server, "trainer")
    overflowing = {}
    for name, path in _pages(layout_world).items():
        page.set_viewport_size({"width": WIDTHS[0], "height": 900})
        page.goto(f"{live_server.url}{path}")
        _settle(page)
        for width in WIDTHS:  # narrowed in place, as a person drags the window (the page reflows; no reload)
            page.set_viewport_size({"width": width, "height": 900})
            _shot(page, f"{width}-{name}")
            scroll_width = page.evaluate("document.scrollingElement.scrollWidth")
            if scroll_width > width:
                overflowing[f"{name} at {width} px"] = (scroll_width, page.evaluate(CULPRITS, width))
    assert overflowing == {}, f"pages wider than the window: {overflowing}"


def test_recovery_point_actions_are_not_clipped(page, live_server, layout_world):
    """Every Browse / Verify / Restore link of the recovery points list lies wholly inside the page and
    inside its table's visible box, at 1440 and at 1024 px."""
    from protection.models import RecoveryPoint

    sign_in(page, live_server, "trainer")
    points = list(RecoveryPoint.objects.filter(instance=layout_world["instance"]))
    assert len(points) == 2
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"{live_server.url}/backup/instances/{layout_world['instance'].pk}/")
        _settle(page)
        browse = page.locator(f"#browse-{points[0].pk}")
        browse.wait_for()
        clipped = page.evaluate("""() => {
            const out = [];
            const links = [...document.querySelectorAll('a[id^="browse-"]')].flatMap(a => [...a.parentElement.querySelectorAll('a')]);
            for (const a of links) {
                const r = a.getBoundingClientRect();
                // The nearest ancestor that clips (overflow other than visible) must show the whole link.
                let box = {left: 0, right: document.documentElement.clientWidth};
                for (let el = a.parentElement; el; el = el.parentElement) {
                    const s = getComputedStyle(el);
                    if (s.overflowX !== 'visible') { const b = el.getBoundingClientRect(); box = {left: Math.max(box.left, b.left), right: Math.min(box.right, b.right)}; }
                }
                if (r.width === 0 || r.left < box.left - 0.5 || r.right > box.right + 0.5) out.push(a.textContent.trim() + ' ' + Math.round(r.left) + '-' + Math.round(r.right) + ' in ' + Math.round(box.left) + '-' + Math.round(box.right));
            }
            return out;
        }""")
        assert clipped == [], f"at {width} px: {clipped}"


def test_top_bar_and_recovery_points_fit_while_role_playing_at_1024_px(page, live_server, layout_world):
    """The fullest top bar (a persona played, the lab clock ahead) fits at 1024 and 1440 px, and neither the
    instance page nor the vault page scrolls sideways; the recovery points list fits its own box too (it
    scrolled sideways inside it at 1024 px, its actions column pinned over the Stored column)."""
    import datetime as dt

    from playwright.sync_api import expect

    from security import services as security_services
    from tests.browser.conftest import play

    security_services.move_lab_clock(layout_world["lab"].trainer, forward=dt.timedelta(days=3))
    sign_in(page, live_server, "trainer")
    play(page, "Backup operator")
    pages = {"instance": f"/backup/instances/{layout_world['instance'].pk}/",
             "vault": f"/vaults/{layout_world['vault'].pk}/"}
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        for name, path in pages.items():
            page.goto(f"{live_server.url}{path}")
            expect(page.locator(".persona-badge")).to_have_text("Role-playing: Backup operator")
            expect(page.locator(".lab-clock-badge")).to_be_visible()
            if name == "instance":
                expect(page.locator("#recovery-points-grid tbody tr")).to_have_count(2)
            _settle(page)
            _shot(page, f"{width}-role-playing-{name}")
            top = page.evaluate("[document.querySelector('.topbar').scrollWidth, document.querySelector('.topbar').clientWidth]")
            assert top[0] <= top[1], f"the top bar overflows on the {name} page at {width} px: {top}"
            scroll_width = page.evaluate("document.scrollingElement.scrollWidth")
            assert scroll_width <= width, f"the {name} page scrolls sideways at {width} px: {page.evaluate(CULPRITS, width)}"
            if name == "instance":
                box = page.evaluate("(() => { const c = document.querySelector('#recovery-points .page-card'); "
                                    "return [c.scrollWidth, c.clientWidth]; })()")
                assert box[0] <= box[1], f"the recovery points list scrolls sideways in its box at {width} px: {box}"
