"""Browser fixtures of the end-to-end tests: Debian's Chromium driven by Playwright.

One browser per test module; every test opens its pages in fresh contexts (own cookies) via
``open_page``, and fails if any of its pages logged a console error or raised a JavaScript
error. Screenshots go to ``$SELFSUP_E2E_ARTIFACTS`` (default ``<repo>/test-artifacts/e2e``).

Without ``/usr/bin/chromium`` or the ``playwright`` package the tests are skipped, except in
CI (``$CI`` set), where that is a failure: CI must run them (``apt-get install chromium``).
Playwright never downloads a browser here (no ``playwright install``).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from _web import CHROMIUM, CHROMIUM_ARGS, OpenPage, WebPage

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Playwright

#: Milliseconds a Playwright action or expectation waits before failing.
DEFAULT_TIMEOUT_MS = 15_000


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the browser tests: apt-get install chromium")
    pytest.skip(f"{reason}; set CI=1 to make this a failure")


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """The Playwright driver (sync API), one per module.

    Not one per session, though starting it costs ~2 s: between its calls the sync API
    marks its asyncio loop as the thread's running loop, so while it lives no later test
    module could call ``anyio.run``/``asyncio.run`` (tests/web/test_routes.py does).
    """
    if importlib.util.find_spec("playwright") is None:
        _unavailable("the playwright package is not installed (pip install -e .[dev])")
    if not CHROMIUM.exists():
        _unavailable(f"no Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    driver = sync_playwright().start()
    try:
        yield driver
    finally:
        driver.stop()


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Headless Chromium, one per module (each test's pages get fresh contexts)."""
    launched = playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_ARGS)
    )
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture
def open_page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[OpenPage]:
    """``open_page(base_url)``: a tab in a new browser context (logged out), watched for
    console and page errors; the test fails at teardown if any tab had one."""
    contexts: list[BrowserContext] = []
    pages: list[WebPage] = []

    def factory(base_url: str) -> WebPage:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        contexts.append(context)
        page = WebPage(context.new_page(), base_url, request.node.name)
        pages.append(page)
        return page

    yield factory
    errors = [e for p in pages for e in p.errors]
    for context in contexts:
        context.close()
    if errors:
        pytest.fail(f"{len(errors)} browser error(s):\n" + "\n".join(errors[:20]))
