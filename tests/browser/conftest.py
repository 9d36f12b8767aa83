"""Real-browser tests: Debian's Chromium driven by Playwright, against a server started in
this process. Each browser context is one user; the microphone is a fake device that
plays a tone generated here, and every peer connection stays on 127.0.0.1."""

from __future__ import annotations

import math
import re
import struct
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.signaling.conftest import Server, make_server  # noqa: F401  (a fixture)

CHROMIUM = Path("/usr/bin/chromium")
HAVE_CHROMIUM = CHROMIUM.exists()
ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "out"
SCREENSHOTS = OUT / "screenshots"
LOOPBACK = ("127.0.0.1",)


def write_tone(path: Path, *, seconds: float = 4.0, hz: float = 440.0, rate: int = 48_000) -> Path:
    """A loud sine tone, 16-bit mono: what the fake microphone plays, in a loop."""
    frames = bytearray()
    for i in range(int(seconds * rate)):
        frames += struct.pack("<h", int(0.6 * 32767 * math.sin(2 * math.pi * hz * i / rate)))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))
    return path


@pytest.fixture(scope="session")
def tone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tone(tmp_path_factory.mktemp("audio") / "tone.wav")


def chromium_args(tone: Path) -> list[str]:
    return [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={tone}",
        "--allow-loopback-in-peer-connection",
        "--disable-features=WebRtcHideLocalIpsWithMdns",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--autoplay-policy=no-user-gesture-required",
    ]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the item, so fixtures know whether the test failed."""
    report = yield
    setattr(item, "report_" + report.when, report)
    return report


@dataclass
class Users:
    """Opens browser contexts (one per user) and screenshots them if the test fails."""

    browser: Browser
    base_url: str
    pages: dict[str, Page] = field(default_factory=dict)
    contexts: list[BrowserContext] = field(default_factory=list)
    logs: dict[str, list[str]] = field(default_factory=dict)

    async def open(
        self,
        name: str,
        *,
        locale: str = "en-US",
        width: int = 1280,
        height: int = 860,
        path: str = "/",
        init_script: str | None = None,
    ) -> Page:
        context = await self.browser.new_context(
            locale=locale,
            viewport={"width": width, "height": height},
            base_url=self.base_url,
        )
        context.set_default_timeout(20_000)
        if init_script:
            await context.add_init_script(init_script)
        self.contexts.append(context)
        page = await context.new_page()
        log = self.logs.setdefault(name, [])
        page.on("console", lambda m: log.append(f"console.{m.type}: {m.text}"))
        page.on("pageerror", lambda e: log.append(f"pageerror: {e}"))
        self.pages[name] = page
        await page.goto(path)
        return page

    async def screenshot_all(self, test_name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
        for user, page in self.pages.items():
            if page.is_closed():
                continue
            try:
                await page.screenshot(path=str(SCREENSHOTS / f"{safe}-{user}.png"), full_page=True)
            except Exception as exc:  # the page may be gone; the log still helps
                print(f"screenshot of {user} failed: {exc}")
            for line in self.logs.get(user, [])[-40:]:
                print(f"[{user}] {line}")

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()


@pytest.fixture
async def server(make_server: Callable[..., Awaitable[Server]]) -> Server:  # noqa: F811
    return await make_server(ice_addresses=LOOPBACK, reconnect_grace=20.0, stats_interval=0.3)


@pytest.fixture
async def users(request: pytest.FixtureRequest, server: Server, tone: Path) -> AsyncIterator[Users]:
    if not HAVE_CHROMIUM:
        pytest.skip("Debian's chromium is not installed (scripts/test installs it)")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=chromium_args(tone)
        )
        opened = Users(browser, server.url)
        try:
            yield opened
        finally:
            report = getattr(request.node, "report_call", None)
            if report is None or report.failed:
                await opened.screenshot_all(request.node.name)
            await opened.close()
            await browser.close()
