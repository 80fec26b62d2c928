"""Debian's Chromium under Playwright, the way the inspector's browser tests and benchmark run it.

    with sync_playwright() as pw:
        browser = launch(pw)

Playwright drives the system's browser (`/usr/bin/chromium`, from `apt-get install chromium`;
`./run.sh test` installs it); it never downloads one of its own. The flags keep Chromium from
reaching out to the network at start (updates, sync, field trials), which a closed network
refuses and which only slows a test down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

DEFAULT_PATH = "/usr/bin/chromium"
ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync")


def chromium_path(path: str = DEFAULT_PATH) -> Path:
    """The browser's executable; FileNotFoundError says how to install it when it is missing."""
    if not Path(path).exists():
        raise FileNotFoundError(f"{path} is missing: install Debian's browser with `apt-get install chromium` "
                                "(./run.sh test does)")
    return Path(path)


def launch(playwright: Any, path: str = DEFAULT_PATH) -> Any:
    """A headless Chromium browser started by a `sync_playwright()` instance."""
    return playwright.chromium.launch(executable_path=str(chromium_path(path)), args=list(ARGS), headless=True)
