"""Headless Chromium for browser tests: Debian's /usr/bin/chromium driven by
Playwright for Python (scripts/setup.sh installs both; Playwright never
downloads a browser of its own here)."""

import contextlib
import os

CHROMIUM = "/usr/bin/chromium"
# No sandbox (the tests may run as root), no GPU, and none of Chromium's own
# connections to the internet, which this machine's closed network refuses
# one by one (background networking, component updates, sync, QUIC).
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@contextlib.contextmanager
def chromium():
    """A launched headless browser, closed on exit."""
    if not os.path.exists(CHROMIUM):
        raise RuntimeError(f"{CHROMIUM} is missing: scripts/setup.sh installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
