"""The Users page (admins): each action of a person's lifecycle in a real Chromium against a real
server, with the person on the other side seeing its effect (issue 20, finding 4)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from support.db import TEST_PASSWORD
from support.web import USERS, VIEWPORT, Dashboard, screenshot, sign_in

NEW_PASSWORD = "lilac-otter-4711"


@pytest.fixture
def other(browser: Any) -> Iterator[Any]:
    """A second browser (its own cookies): the person the admin acts on."""
    context = browser.new_context(viewport=VIEWPORT, color_scheme="light", locale="en-US")
    yield context.new_page()
    context.close()


def _sign_in_as(page: Any, url: str, name: str, password: str) -> None:
    page.goto(url + "/signin/")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def _act(page: Any, name: str, button: str, confirm: str | None = None) -> None:
    page.get_by_test_id(f"person-{name}").get_by_role("button", name=button).click()
    page.get_by_role("dialog").get_by_role("button", name=confirm or button).click()
    page.get_by_role("dialog").wait_for(state="detached")


def _audit_rows(page: Any) -> list[str]:
    return [
        t.strip()
        for t in page.get_by_role("table", name="Audit").locator("tbody tr").all_inner_texts()
    ]


def test_admin_adds_a_person_who_chooses_their_own_password(
    page: Any, other: Any, dashboard: Dashboard
) -> None:
    sign_in(page, dashboard.url, "admin", start="/users/")
    page.get_by_label("New user name").fill("bob")
    page.get_by_label("Role").select_option("reviewer")
    page.get_by_role("button", name="Add person").click()
    temporary = page.get_by_test_id("temporary-password").inner_text()
    assert len(temporary) >= 16
    page.get_by_test_id("person-bob").get_by_text("must change password").wait_for()
    screenshot(page, "users")

    # Bob signs in with it, is sent to change it, and then reaches the dashboard.
    _sign_in_as(other, dashboard.url, "bob", temporary)
    other.wait_for_url("**/password/**")
    other.get_by_text("An admin set a temporary password").wait_for()
    other.get_by_label("Current password").fill(temporary)
    other.get_by_label("New password", exact=True).fill("password")
    other.get_by_label("New password again").fill("password")
    other.get_by_role("button", name="Change password").click()
    other.get_by_role("alert").get_by_text("most common").wait_for()  # the rules, in the page
    other.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    other.get_by_label("New password again").fill(NEW_PASSWORD)
    other.get_by_role("button", name="Change password").click()
    other.wait_for_url(lambda url: "/password" not in url)
    other.get_by_test_id("who").get_by_text("bob").wait_for()

    page.reload()
    page.get_by_test_id("person-bob").get_by_text("active", exact=True).wait_for()
    rows = _audit_rows(page)
    assert "change password" in rows[0] and "bob" in rows[0]
    assert "create" in rows[1] and USERS["admin"] in rows[1]


def test_admin_changes_a_role_and_signs_a_person_out_everywhere(
    page: Any, other: Any, dashboard: Dashboard
) -> None:
    rita = USERS["reviewer"]
    _sign_in_as(other, dashboard.url, rita, TEST_PASSWORD)
    other.wait_for_url(lambda url: "/signin" not in url)
    other.get_by_role("link", name="Review").wait_for()

    sign_in(page, dashboard.url, "admin", start="/users/")
    row = page.get_by_test_id(f"person-{rita}")
    row.get_by_role("button", name="Change role").click()
    page.get_by_role("dialog").get_by_label("New role").select_option("viewer")
    page.get_by_role("dialog").get_by_role("button", name="Change role").click()
    row.get_by_text("viewer", exact=True).wait_for()
    other.reload()
    other.get_by_role("link", name="Frames").wait_for()
    assert other.get_by_role("link", name="Review").count() == 0  # a viewer now

    _act(page, rita, "Sign out everywhere")
    page.get_by_role("status").get_by_text("1 session(s) ended").wait_for()
    other.reload()
    other.wait_for_url("**/signin/**")
    assert "sign_out" not in _audit_rows(page)[0]  # shown in words
    assert "sign out" in _audit_rows(page)[0]


def test_admin_disables_and_enables_a_person(page: Any, other: Any, dashboard: Dashboard) -> None:
    victor = USERS["viewer"]
    _sign_in_as(other, dashboard.url, victor, TEST_PASSWORD)
    other.wait_for_url(lambda url: "/signin" not in url)

    sign_in(page, dashboard.url, "admin", start="/users/")
    _act(page, victor, "Disable")
    page.get_by_test_id(f"person-{victor}").get_by_text("disabled", exact=False).wait_for()
    other.reload()
    other.wait_for_url("**/signin/**")  # the open session ended at once
    _sign_in_as(other, dashboard.url, victor, TEST_PASSWORD)
    other.get_by_role("alert").get_by_text("Wrong user name or password").wait_for()

    _act(page, victor, "Enable")
    page.get_by_test_id(f"person-{victor}").get_by_text("active", exact=True).wait_for()
    _sign_in_as(other, dashboard.url, victor, TEST_PASSWORD)
    other.wait_for_url(lambda url: "/signin" not in url)


def test_admin_resets_a_password_then_deletes_the_person(
    page: Any, other: Any, dashboard: Dashboard
) -> None:
    victor = USERS["viewer"]
    sign_in(page, dashboard.url, "admin", start="/users/")
    _act(page, victor, "Reset password")
    temporary = page.get_by_test_id("temporary-password").inner_text()
    _sign_in_as(other, dashboard.url, victor, TEST_PASSWORD)
    other.get_by_role("alert").get_by_text("Wrong user name or password").wait_for()
    _sign_in_as(other, dashboard.url, victor, temporary)
    other.wait_for_url("**/password/**")

    page.get_by_role("button", name="Done").click()
    _act(page, victor, "Delete")
    page.get_by_test_id(f"person-{victor}").wait_for(state="detached")
    page.get_by_label("Show deleted people").check()
    page.get_by_test_id(f"person-{victor}").get_by_text("deleted").wait_for()
    assert page.get_by_test_id(f"person-{victor}").get_by_role("button").count() == 0
    rows = _audit_rows(page)
    assert "delete" in rows[0] and "reset password" in rows[1]
    # Nobody acts on themselves from this page: the admin's own row has no such buttons.
    own = page.get_by_test_id(f"person-{USERS['admin']}")
    assert own.get_by_role("button", name="Delete").count() == 0
    assert own.get_by_role("button", name="Disable").count() == 0


@pytest.mark.parametrize("role", ["viewer", "reviewer"])
def test_only_admins_see_the_users_page(page: Any, dashboard: Dashboard, role: str) -> None:
    sign_in(page, dashboard.url, role, start="/users/")
    page.get_by_text("Only admins manage people").wait_for()
    assert page.get_by_role("link", name="Users").count() == 0
    assert page.get_by_role("table", name="People").count() == 0
