"""The steward's console in a real headless browser (the distribution's Chromium, driven by Playwright) over the
demo's database, SQLite and PostgreSQL: the queue, compare, accept, the person changed, undo; a bulk decision
previewed, made and undone; a hostile record shown as text; signing in with the token.

Without a browser these tests skip with the reason, unless PATIENTSYNC_REQUIRE_BROWSER=1 (``.ci/run``). The
queue and compare screenshots are written to PATIENTSYNC_SCREENSHOTS when it names a folder (the README's)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.console_support import (
    HOSTILE,
    OPERATOR,
    TOKEN,
    Served,
    identity_state,
    open_reviews,
)

pytestmark = pytest.mark.xdist_group("demo")
pytest_plugins = ("tests.console_support",)  # the demo database, served

REQUIRE_BROWSER = os.environ.get("PATIENTSYNC_REQUIRE_BROWSER") == "1"


def _chromium() -> str | None:
    for candidate in (os.environ.get("PATIENTSYNC_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "playwright is not installed (pip install -e '.[test]')"
    else:
        executable = _chromium()
        reason = "no Chromium (apt-get install chromium, or set PATIENTSYNC_CHROMIUM)" if executable is None else ""
    if reason:
        if REQUIRE_BROWSER:
            pytest.fail(f"PATIENTSYNC_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's own sandbox cannot start.
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    dialogs: list[str] = []

    def dismissed(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    opened.on("dialog", dismissed)
    opened.dialogs = dialogs
    yield opened
    context.close()


def _screenshot(page: Any, name: str, tmp_path: Path, served: Served) -> None:
    page.screenshot(path=str(tmp_path / name), full_page=True)
    folder = os.environ.get("PATIENTSYNC_SCREENSHOTS")
    if folder and served.engine.dialect.name == "sqlite":
        page.screenshot(path=str(Path(folder) / name), full_page=True)
    assert (tmp_path / name).stat().st_size > 10_000


def _person_of(served: Served, patient_id: str) -> str:
    with served.engine.connect() as conn:
        return str(conn.execute(text("SELECT person_id FROM patient WHERE id = :p"), {"p": patient_id}).scalar())


def test_queue_compare_accept_the_person_changes_undo(served: Served, page: Any, tmp_path: Path) -> None:
    reviews = open_reviews(served.engine)
    top = reviews[0]
    page.goto(f"{served.base}/review")
    assert page.locator("table.queue tbody tr").count() == len(reviews)
    assert f"{len(reviews)} open possible matches" in page.locator("h1").inner_text()
    _screenshot(page, "console-queue.png", tmp_path, served)

    page.locator("table.queue tbody tr").first.get_by_role("link", name="Compare").click()
    page.wait_for_url(f"**/review/{top['id']}")
    assert page.locator("table.compare tbody tr").count() >= 10
    assert page.locator("table.waterfall tr").count() >= 3  # the prior and the comparisons that moved the score
    _screenshot(page, "console-compare.png", tmp_path, served)

    before = _person_of(served, top["patient_id"])
    page.get_by_role("button", name="Accept: the same person").click()
    page.wait_for_url(f"**/person/{top['patient_id']}")
    assert _person_of(served, top["patient_id"]) == top["person_id"] != before
    member = page.locator("table.members tbody tr", has_text=top["patient_id"])
    assert "match, manual" in member.inner_text()
    assert top["person_id"] in page.locator("h1").inner_text()
    assert OPERATOR in page.locator("table.history").inner_text()

    member.get_by_role("button", name="Undo").click()
    page.wait_for_url(f"**/person/{top['patient_id']}")
    assert _person_of(served, top["patient_id"]) != top["person_id"]
    assert "match, manual" not in page.locator("table.members").inner_text()
    # Decided again automatically, the patient waits for review against that person once more.
    assert (top["patient_id"], top["person_id"]) in {
        (r["patient_id"], r["person_id"]) for r in open_reviews(served.engine)
    }


def test_bulk_reject_previews_then_decides_then_undoes(served: Served, page: Any) -> None:
    reviews = open_reviews(served.engine)
    low = min(r["score"] for r in reviews) - 0.001
    page.goto(f"{served.base}/review")
    form = page.locator("form.bulk")
    form.locator("select[name=action]").select_option("reject")
    form.locator("input[name=low]").fill(f"{low:.3f}")
    before = identity_state(served.engine)
    form.get_by_role("button", name="Preview").click()
    page.wait_for_url("**/review/bulk?**")
    assert f"Preview: reject {len(reviews)} possible matches" in page.locator("h1").inner_text()
    assert page.locator("table.bulk-list tbody tr").count() == len(reviews)
    assert identity_state(served.engine) == before  # a preview decides nothing

    page.get_by_role("button", name=f"Reject these {len(reviews)}").click()
    assert f"Rejected {len(reviews)} possible matches" in page.locator("h1").inner_text()
    assert open_reviews(served.engine) == []
    page.get_by_role("button", name="Undo this batch").click()
    assert f"Undid {len(reviews)} decisions" in page.locator("h1").inner_text()
    assert len(open_reviews(served.engine)) == len(reviews)


def test_a_hostile_record_renders_as_text(served: Served, page: Any) -> None:
    review = open_reviews(served.engine)[0]
    with served.engine.begin() as conn:
        conn.execute(
            text("UPDATE patient SET given_name = :n WHERE id = :p"), {"n": HOSTILE, "p": review["patient_id"]}
        )
    page.goto(f"{served.base}/review/{review['id']}")
    assert HOSTILE in page.locator("table.compare").inner_text()
    page.goto(f"{served.base}/review")
    assert HOSTILE in page.locator("table.queue").inner_text()
    assert page.locator("main img").count() == 0 and page.locator("main script").count() == 0
    assert page.dialogs == []


def test_a_post_from_the_browser_without_the_csrf_token_is_refused(served: Served, page: Any) -> None:
    review = open_reviews(served.engine)[0]
    page.goto(f"{served.base}/review/{review['id']}")  # the session cookie is the browser's now
    before = identity_state(served.engine)
    refused = page.request.post(f"{served.base}/links/{review['id']}/accept", form={"csrf": ""})
    assert refused.status == 403 and "CSRF" in refused.text()
    assert identity_state(served.engine) == before


def test_signing_in_with_the_token(served_with_token: Served, page: Any) -> None:
    served = served_with_token
    page.goto(f"{served.base}/review")
    page.wait_for_url("**/login")
    page.get_by_label("Your name").fill("Di Steward")
    page.get_by_label("Console token").fill("not-the-token-at-all")
    page.get_by_role("button", name="Sign in").click()
    assert "wrong token" in page.locator("main").inner_text()
    page.get_by_label("Your name").fill("Di Steward")
    page.get_by_label("Console token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/review")
    assert "Di Steward" in page.locator("header").inner_text()
    [cookie] = page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and TOKEN not in cookie["value"]
    page.get_by_role("button", name="sign out").click()
    page.wait_for_url("**/login")
