"""A real browser for tests: Debian's headless Chromium driven by Selenium through Debian's chromedriver
(`make test` installs both). `browser` is a module-scoped fixture; `Browser` wraps the driver with what
page tests need: the console and network failures since the last look, screen sizes, screenshots."""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = Path(__file__).resolve().parent / "output" / "screenshots"
# The flags this machine needs (its network is closed: no background fetches, no QUIC, no sync).
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--lang=en-US",
    "--window-size=1280,800",
]
DESKTOP = (1280, 800)
PHONE = (390, 844)
T = TypeVar("T")
# What a condition may raise while the page is still drawing: an element replaced or not there yet.
STILL_CHANGING = (StaleElementReferenceException, WebDriverException, LookupError, ValueError)


@dataclass
class Failure:
    """A console error or a failed request the page caused."""

    kind: str
    text: str


class Browser:
    """One Chromium session: navigation, waits, and the failures the pages logged."""

    def __init__(self, driver: webdriver.Chrome) -> None:
        self.driver = driver

    def get(self, url: str) -> None:
        self.driver.get(url)

    def css(self, selector: str) -> WebElement:
        return self.driver.find_element("css selector", selector)

    def all(self, selector: str) -> list[WebElement]:
        return self.driver.find_elements("css selector", selector)

    def run(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def wait(self, condition: Callable[[], T], timeout: float = 20.0, what: str = "condition") -> T:
        """The first truthy value of `condition` within `timeout` seconds (elements may go stale, or not
        be there yet, meanwhile)."""
        waiting = WebDriverWait(self.driver, timeout, poll_frequency=0.1, ignored_exceptions=STILL_CHANGING)
        return waiting.until(lambda _: condition(), f"timed out after {timeout}s waiting for {what}")

    def wait_for(self, selector: str, timeout: float = 20.0) -> WebElement:
        return self.wait(lambda: self.all(selector)[0] if self.all(selector) else None, timeout, selector)

    def text(self, selector: str) -> str:
        return self.css(selector).text

    def failures(self) -> list[Failure]:
        """Console errors and failed requests since the last call (reading empties the logs)."""
        found = [
            Failure("console", entry["message"])
            for entry in self.driver.get_log("browser")
            if entry["level"] == "SEVERE"
        ]
        urls: dict[str, str] = {}
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            params = message.get("params", {})
            if message["method"] == "Network.requestWillBeSent":
                urls[params["requestId"]] = params["request"]["url"]
            elif message["method"] == "Network.responseReceived":
                response = params["response"]
                if response["status"] >= 400:
                    found.append(Failure("request", f"{response['status']} {response['url']}"))
            elif message["method"] == "Network.loadingFailed" and not params.get("canceled"):
                url = urls.get(params["requestId"], "?")
                found.append(Failure("request", f"{params.get('errorText')} {params.get('type')} {url}"))
        return found

    def resize(self, width: int, height: int, *, mobile: bool = False) -> None:
        """Emulate a viewport of exactly width x height CSS pixels (a phone: touch and mobile layout)."""
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
        )

    def download_to(self, folder: Path) -> None:
        """Save downloads (a page's CSV buttons) into `folder` without asking."""
        self.driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(folder)}
        )

    def screenshot(self, name: str) -> Path:
        """The whole page (beyond the viewport) as SCREENSHOTS/<name>.png."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
        )
        path = SCREENSHOTS / f"{name}.png"
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


def chromium_options(profile: Path) -> webdriver.ChromeOptions:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return options


def start_browser(profile: Path) -> Browser:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("Chromium is missing: `make test` installs Debian's chromium and chromium-driver")
    service = Service(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(options=chromium_options(profile), service=service)
    driver.set_page_load_timeout(60)
    session = Browser(driver)
    session.get("about:blank")
    session.failures()  # the first tab's new-tab page tries the (closed) network: not ours
    return session


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the test module, with a new empty profile."""
    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-"))
    session = start_browser(profile)
    try:
        yield session
    finally:
        session.driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
