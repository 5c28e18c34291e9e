"""Browser fixtures for the web-page tests: Debian's chromium driven by Playwright (never a browser
that Playwright downloads) against a gateway on a real port, with a team of the module's own.

A test module takes the fixtures it uses by binding them to module-level names (pytest finds a
fixture by its name in the module; an import of the same names would read to linters as unused)::

    import web_browser
    browser, page, live, web_team = web_browser.browser, web_browser.page, web_browser.live, web_browser.web_team

Every fixture here is module-scoped except ``page`` (a fresh browser context per test).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import httpx
import pytest

from belle_shared.teams import create_team
from helpers import LiveGateway, wait_for

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags chromium tries outside hosts (refused by a closed
# network, many at a time) and fails noisily. Playwright gives every launch a fresh profile folder of its own.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def web_team(session_factory, settings):
    """A team of this module's own: (team, API key)."""
    with session_factory() as session:
        team, key = create_team(session, name=f"web-{uuid.uuid4().hex[:8]}", secret=settings.secret_key)
        session.commit()
    return team, key


@pytest.fixture(scope="module")
def live(settings):
    from belle_gateway.settings import GatewaySettings

    gateway = LiveGateway(GatewaySettings(**{**settings.model_dump(), "run_sweeper": False}))
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def http(live, web_team):
    with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {web_team[1]}"}, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium "
                    "(apt-get install --no-install-recommends chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    """A fresh browser context (empty storage); fails the test on an uncaught script error or a
    Content-Security-Policy violation."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    tab = context.new_page()
    tab.set_default_timeout(WAIT_MS)
    problems: list[str] = []
    tab.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
    tab.on("console", lambda msg: problems.append(f"console: {msg.text}")
           if "Content Security Policy" in msg.text else None)
    yield tab
    context.close()
    assert not problems, problems


def screenshot(page, name: str) -> None:
    """Keep a screenshot where BELLE_TEST_SCREENSHOTS says (nothing is written otherwise)."""
    folder = os.environ.get("BELLE_TEST_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def until(page, expression: str, *, timeout: float = WAIT_MS / 1000) -> None:
    """Wait until a JavaScript expression is true in the page. Polled from here: Playwright's own
    wait_for_function evaluates a string in the page, which the pages' CSP forbids (no eval)."""
    wait_for(lambda: page.evaluate(expression), timeout=timeout, interval=0.05, message=expression)


def sign_in(page, live, key: str, *, to: str = "chat.html") -> None:
    page.goto(f"{live.url}/ui/{to}")
    page.wait_for_url("**/index.html?next=*")          # no key yet: off to the sign-in page
    page.fill("#api-key", key)
    page.click("#login-button")
    page.wait_for_url(f"**/{to}")
