"""Storage accounts in the browser: create an account and a container, upload several files with a
folder prefix, browse with a prefix filter, download one and compare the bytes."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in

pytestmark = pytest.mark.browser

FILES = {"résumé café.txt": "Ünïcödé content\n".encode(), "q1 summary.csv": b"quarter,total\nq1,42\n"}


def test_upload_browse_and_download_blobs(page, live_server, seeded_lab, tmp_path, settings):
    """GIVEN a signed-in trainer
    WHEN they create a storage account and a container, upload two files into "reports/2024",
    filter by prefix and download one
    THEN the files are on disk under the container's folder and the download is byte-identical."""
    for name, data in FILES.items():
        (tmp_path / name).write_bytes(data)
    sign_in(page, live_server, "trainer")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Storage accounts").click()
    expect(page.get_by_text("No storage accounts to show")).to_be_visible()
    page.get_by_role("link", name="Create storage account").click()

    page.get_by_label("Storage account name").fill("Bad_Name")
    page.get_by_role("button", name="Review + create").click()
    expect(page.get_by_role("alert")).to_contain_text("between 3 and 24 characters")
    page.get_by_label("Storage account name").fill("browserblobs")
    page.get_by_role("button", name="Review + create").click()
    expect(page.get_by_role("heading", name="browserblobs")).to_be_visible()
    expect(page.get_by_text("Storage account 'browserblobs' created.")).to_be_visible()

    page.get_by_role("navigation", name="Resource menu").get_by_role("link", name="Containers").click()
    page.get_by_role("link", name="+ Container").first.click()
    page.get_by_label("Name").fill("docs")
    page.get_by_role("button", name="Create").click()
    page.get_by_role("link", name="docs", exact=True).click()
    expect(page.get_by_text("This container is empty")).to_be_visible()

    page.get_by_role("toolbar").get_by_role("link", name="Upload").click()
    page.get_by_label("Files", exact=True).set_input_files([str(tmp_path / n) for n in FILES])
    page.get_by_label("Upload to folder (optional)").fill("reports/2024")
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.get_by_text("Uploaded 2 blobs")).to_be_visible()
    rows = page.locator("#blob-list tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("reports/2024/")

    page.get_by_label("Search blobs by prefix (case-sensitive)").fill("reports/2024/r")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("résumé café.txt")
    expect(rows.first).to_contain_text("20 bytes")

    with page.expect_download() as info:
        rows.first.get_by_role("link", name="Download").click()
    download = info.value
    assert download.suggested_filename == "résumé café.txt"
    assert open(download.path(), "rb").read() == FILES["résumé café.txt"]

    container_dir = settings.STRONGROOM_DATA_ROOT / "storage" / "browserblobs" / "docs" / "reports" / "2024"
    assert {p.name: p.read_bytes() for p in container_dir.iterdir()} == FILES
