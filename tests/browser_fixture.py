"""Debian's chromium, driven by Playwright's Python package, for the report's browser tests
(tests/analysis/test_report_browser.py, tests/e2e/test_report_browser_search.py).

Playwright's own browser download is never used: `.ci/run` installs Debian's `chromium`, and
the tests launch it by path. Without it they are skipped locally and fail in CI.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",  # CI runs as root, where chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

EVIL = "</script><script>alert(1)</script>"

ALL_RENDERED = (
    "document.querySelectorAll('.figure').length > 0 && "
    "document.querySelectorAll('.figure').length === "
    "document.querySelectorAll('.figure[data-rendered]').length"
)


def _skip_or_fail(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why}: .ci/run installs it, so CI must have it")
    pytest.skip(why)


def open_browser():
    """Chromium, launched by path (a generator: the `browser` fixture in conftest.py)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _skip_or_fail("the playwright package is not installed")
    if not Path(CHROMIUM).exists():
        _skip_or_fail("Debian's chromium is not installed")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Visit:
    """One offline page load: what the console said, what the page tried to fetch."""

    def __init__(self, browser, report: Path):
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.context = browser.new_context(viewport={"width": 1360, "height": 900})
        self.context.set_offline(True)
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", self._dialog)
        self.page.goto(report.resolve().as_uri())
        self.page.wait_for_function(ALL_RENDERED, timeout=60_000)

    def _route(self, route) -> None:
        url = route.request.url
        if url.startswith("file://"):
            route.continue_()
        else:  # anything else would need the network: refuse it and remember it was asked for
            self.requests.append(url)
            route.abort()

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def svg_counts(self) -> dict[str, int]:
        return self.page.evaluate(
            "Object.fromEntries(Array.from(document.querySelectorAll('.figure'))"
            ".map(d => [d.id, d.querySelectorAll('.main-svg').length]))"
        )

    def close(self) -> None:
        self.context.close()
