"""The admin pages in a real browser: Debian's Chromium, driven headless by Selenium through
Debian's chromedriver, against a real ``todoku serve`` with its https listener.

A message is submitted to a domain whose MX does not answer (a real DNS server on loopback
points it at a closed port), so it waits in the queue with a real failed attempt. The
administrator logs in, sees it, opens its story, holds and releases it, sees a form without its
CSRF token refused, switches the page to Japanese, and logs out. Screenshots of the queue and
the story are saved (``TODOKU_ARTEFACTS``, else the test's temporary directory).
"""

from __future__ import annotations

import http.client
import json
import os
import poplib
import smtplib
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PASSWORD, client_tls_context, require_tool
from tests.dnsserver import DnsServer
from tests.web.test_web_e2e import bound_ports, start_server

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

ADMIN = "postmaster@example.test"
SENDER = "alice@example.test"
RECIPIENT = "bob@unreachable.test"
WAIT = 30.0


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsServer]:
    with DnsServer() as server:
        server.add("unreachable.test", "MX", "10 mx.unreachable.test.")
        server.add("mx.unreachable.test", "A", "127.0.0.1")
        yield server


@pytest.fixture(scope="module")
def todoku(tmp_path_factory: pytest.TempPathFactory, dns: DnsServer) -> Iterator[Any]:
    extra = (
        f'[dns]\nnameservers = ["{dns.address}"]\n\n'
        f'[delivery]\nport = {closed_port()}\nretry = ["1h"]\n'
    )
    server = start_server(tmp_path_factory.mktemp("admin") / "server", extra)
    server.cli("user", "add", "--admin", ADMIN, "--password-stdin", input=PASSWORD + "\n")
    yield server
    server.stop()


def chromium(profile: Path) -> Any:
    require_tool("chromium")
    driver_path = require_tool("chromedriver")
    options = webdriver.ChromeOptions()
    options.binary_location = require_tool("chromium")
    for argument in (
        "--headless=new",
        "--no-sandbox",  # as root (CI)
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--no-first-run",
        "--window-size=1400,1000",
        "--lang=en-US",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"intl.accept_languages": "en-US,en"})
    # The server's certificate is its own self-signed one: the browser is told to accept it
    # (the WebDriver capability), the page is still https (a secure context, Secure cookies).
    options.accept_insecure_certs = True
    return webdriver.Chrome(options=options, service=Service(driver_path))


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    try:
        driver = chromium(tmp_path / "profile")
    except WebDriverException as exc:
        pytest.fail(f"Chromium did not start: {exc.msg}")
    driver.set_page_load_timeout(WAIT)
    yield driver
    driver.quit()


def artefacts(tmp_path: Path) -> Path:
    where = Path(os.environ.get("TODOKU_ARTEFACTS", tmp_path / "artefacts")) / "web"
    where.mkdir(parents=True, exist_ok=True)
    return where


def submit(server: Any) -> None:
    port = bound_ports(server)["submission"]
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.starttls(context=client_tls_context())
        client.login(SENDER, PASSWORD)
        client.sendmail(
            SENDER,
            [RECIPIENT],
            b'From: "<img src=x onerror=alert(1)>" <alice@example.test>\r\n'
            b"Subject: <script>alert('subject')</script>\r\n\r\nhello\r\n",
        )


def queue_entries(server: Any) -> list[dict[str, Any]]:
    out = server.cli("queue", "list", "--json").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def deferred_message(server: Any) -> dict[str, Any]:
    """The submitted message once its first attempt failed (the closed port refused it)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        for entry in queue_entries(server):
            if entry["recipients"][0]["reason"]:
                return entry
        time.sleep(0.2)
    raise AssertionError(f"no failed attempt recorded: {queue_entries(server)}")


def mailbox(server: Any, user: str) -> str:
    """Every message in ``user``'s mailbox, read with Python's POP3 client."""
    client = poplib.POP3_SSL(
        "127.0.0.1", bound_ports(server)["pop3s"], context=client_tls_context()
    )
    try:
        client.user(user)
        client.pass_(PASSWORD)
        count = len(client.list()[1])
        return "\n".join(
            b"\n".join(client.retr(n)[1]).decode("utf-8", "replace") for n in range(1, count + 1)
        )
    finally:
        client.quit()


def wait_for(driver: Any, css: str) -> Any:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = driver.find_elements(By.CSS_SELECTOR, css)
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"{css} not on {driver.current_url}: {driver.page_source[:2000]}")


def confirm(driver: Any, row_action: str) -> None:
    """Click an action button, then the confirmation page's button."""
    driver.find_element(By.CSS_SELECTOR, f"div.actions button.{row_action}").click()
    wait_for(driver, "button#confirm").click()
    wait_for(driver, "p.notice")


def log_in(driver: Any, base: str, user: str, password: str) -> None:
    driver.get(base + "/admin/")
    wait_for(driver, "form.login")
    driver.find_element(By.NAME, "username").send_keys(user)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.ID, "login").click()


def test_an_administrator_fixes_a_stuck_message_in_the_browser(
    todoku: Any, browser: Any, tmp_path: Path
) -> None:
    submit(todoku)
    entry = deferred_message(todoku)
    queue_id = entry["id"]
    base = f"https://127.0.0.1:{bound_ports(todoku)['https']}"
    shots = artefacts(tmp_path)

    # A wrong password: the login page again, with the reason.
    log_in(browser, base, ADMIN, "not the password")
    assert "Wrong address or password" in wait_for(browser, "p.notice").text

    log_in(browser, base, ADMIN, PASSWORD)
    row = wait_for(browser, f'tr[data-id="{queue_id}"]')
    assert browser.current_url == base + "/admin/queue"
    assert RECIPIENT in row.text and "deferred" in row.text
    assert entry["recipients"][0]["reason"] in row.text
    # The session cookie is HttpOnly: the page's own script cannot read it.
    assert "todoku-session" not in browser.execute_script("return document.cookie")
    browser.save_screenshot(str(shots / "queue.png"))

    row.find_element(By.LINK_TEXT, queue_id).click()
    wait_for(browser, "table.attempts")
    story = browser.find_element(By.TAG_NAME, "main").text
    assert "What todoku does next" in story and "Next try at" in story
    assert entry["recipients"][0]["last_reply"][:30] in story
    # The hostile From and Subject are shown as text: no element was made from them.
    header = browser.find_element(By.CSS_SELECTOR, "pre.header").text
    assert "<script>alert('subject')</script>" in header
    assert not browser.find_elements(By.CSS_SELECTOR, "main img, main script")
    browser.save_screenshot(str(shots / "story.png"))

    confirm(browser, "hold")
    assert browser.find_element(By.CSS_SELECTOR, "dd.state").text == "held"
    assert queue_entries(todoku)[0]["held"] is True
    confirm(browser, "release")
    assert browser.find_element(By.CSS_SELECTOR, "dd.state").text == "deferred"
    assert queue_entries(todoku)[0]["held"] is False

    # A form that lost its CSRF token (as a forged one would lack it) is refused, nothing done.
    browser.execute_script(
        "document.querySelectorAll('div.actions form input[name=csrf]')"
        ".forEach(function (e) { e.remove(); });"
    )
    browser.find_element(By.CSS_SELECTOR, "div.actions button.hold").click()
    refusal = wait_for(browser, "p.refused").text
    assert "CSRF" in refusal
    assert queue_entries(todoku)[0]["held"] is False

    # Deliverability: the checks and the records to publish, each with its copy button.
    browser.get(base + "/admin/queue")
    wait_for(browser, "header nav").find_element(By.LINK_TEXT, "Deliverability").click()
    wait_for(browser, "table.records")
    copies = browser.find_elements(By.CSS_SELECTOR, "button.copy")
    assert any(
        "IN\tMX\t10 mx.example.test." in (b.get_attribute("data-copy") or "") for b in copies
    )
    browser.save_screenshot(str(shots / "deliverability.png"))

    # The language switch.
    browser.get(f"{base}/admin/queue/{queue_id}")
    browser.find_element(By.CSS_SELECTOR, "a.lang").click()
    wait_for(browser, 'html[lang="ja"]')
    assert "todoku がこれからすること" in browser.find_element(By.TAG_NAME, "main").text

    # Retry now: due at once, so the queue tries it again (another refused connection). The
    # release above made it due too: first that attempt ends (the next try is an hour away).
    deadline = time.monotonic() + WAIT
    while queue_entries(todoku)[0]["next_attempt"] < time.time() + 600:
        assert time.monotonic() < deadline, "the attempt after the release did not end"
        time.sleep(0.2)
    tried = queue_entries(todoku)[0]["attempts"]
    confirm(browser, "retry")
    deadline = time.monotonic() + WAIT
    while queue_entries(todoku)[0]["attempts"] <= tried:
        assert time.monotonic() < deadline, "no new attempt after 'retry now'"
        time.sleep(0.2)

    # Return to sender: the message leaves the queue, and its sender gets the report.
    browser.get(f"{base}/admin/queue/{queue_id}")
    confirm(browser, "bounce")
    deadline = time.monotonic() + WAIT
    while queue_entries(todoku):
        assert time.monotonic() < deadline, f"still queued: {queue_entries(todoku)}"
        time.sleep(0.2)
    report = mailbox(todoku, SENDER)
    assert RECIPIENT in report and "administrator" in report

    # Log out: the login page, and the queue is closed again.
    browser.find_element(By.CSS_SELECTOR, "header form button").click()
    wait_for(browser, "form.login")
    browser.get(base + "/admin/queue")
    wait_for(browser, "form.login")
    for name in ("queue.png", "story.png"):
        assert (shots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_user_who_is_not_an_administrator_is_refused(todoku: Any, browser: Any) -> None:
    base = f"https://127.0.0.1:{bound_ports(todoku)['https']}"
    log_in(browser, base, SENDER, PASSWORD)
    # Their own page: where to point a mail program, and no admin pages in the navigation.
    settings = wait_for(browser, "table.settings").text
    assert "SSL/TLS" in settings and SENDER in settings
    assert not browser.find_elements(By.LINK_TEXT, "Queue")
    browser.get(base + "/admin/queue")
    assert "not an administrator" in wait_for(browser, "p.refused").text
    browser.get(base + "/account")
    wait_for(browser, "header form button").click()  # log out
    wait_for(browser, "form.login")


def test_the_http_listener_only_redirects_to_https(todoku: Any) -> None:
    ports = bound_ports(todoku)
    connection = http.client.HTTPConnection("127.0.0.1", ports["http"], timeout=15)
    try:
        connection.request("GET", "/admin/queue")
        answer = connection.getresponse()
        answer.read()
    finally:
        connection.close()
    assert answer.status == 301
    assert answer.headers["Location"] == f"https://mx.example.test:{ports['https']}/admin/queue"
