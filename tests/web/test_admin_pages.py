"""The admin pages' handlers through aiohttp's test client: login, sessions, CSRF, the throttle,
the queue actions and what they change in a real store, escaping, headers and bounds.

The browser end to end (a real todoku, Chromium) is tests/web/test_admin_browser.py; here the
application is built as app.py builds it, on a real SQLite store in a temporary directory.
"""

from __future__ import annotations

import logging
import plistlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import CookieJar
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import PASSWORD, write_config
from todoku.config import Config, load_config
from todoku.policy.auth import AuthThrottle, hash_password
from todoku.store.api import IncomingMessage, RecipientResult, RemoteRecipient
from todoku.store.sqlite import SqliteStore
from todoku.store.sqlite_backend import SqliteBackend
from todoku.web.admin import CSP, AdminPages
from todoku.web.metrics import Metrics
from todoku.web.routes import https_app
from todoku.web.sessions import COOKIE, Sessions

ADMIN = "postmaster@example.test"
USER = "alice@example.test"
PORTS = {"pop3s": 995, "pop3": 110, "submissions": 465, "submission": 587}
HOSTILE_SUBJECT = "<script>alert('subject')</script>"


@dataclass
class Clock:
    now: float = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Site:
    client: TestClient
    store: SqliteStore
    config: Config
    pages: AdminPages
    clock: Clock
    queue_id: str


def queue_message(store: SqliteStore, sender: str, recipient: str, subject: str) -> str:
    writer = store.new_blob()
    writer.write(f"From: <{sender}>\r\nSubject: {subject}\r\n\r\nbody\r\n".encode())
    blob = writer.finish()
    store.commit_sync(
        IncomingMessage(
            blob=blob,
            sender=sender,
            remote=(RemoteRecipient(recipient),),
            subject=subject,
            received_at=1_000_000.0,
        )
    )
    return blob.blob_id


def fail_once(store: SqliteStore, queue_id: str, recipient: str) -> None:
    """One attempt that found the destination unreachable, as the runner records it."""
    store.begin_attempt(queue_id, 1_000_010.0, 1_000_310.0)
    store.record_results(
        queue_id,
        [
            RecipientResult(
                recipient,
                "pending",
                "connect",
                None,
                "",
                "connection refused by mx.unreachable.test",
                "mx.unreachable.test",
                "networkerror",
                "4.4.1",
                "unreachable.test",
            )
        ],
        1_000_010.0,
    )
    store.end_attempt(queue_id, 1_000_310.0, "connection refused")


@pytest.fixture
def data(tmp_path: Path) -> tuple[Config, SqliteStore]:
    config = load_config(write_config(tmp_path, services=("smtp",)))
    store = SqliteStore(config.data_dir)  # closed with the backend made of it
    store.add_user(ADMIN, hash_password(PASSWORD), admin=True)
    store.add_user(USER, hash_password(PASSWORD))
    return config, store


@pytest.fixture
async def site(data: tuple[Config, SqliteStore]) -> AsyncIterator[Site]:
    config, store = data
    queue_id = queue_message(
        store, '"<b>evil"@example.test', "bob@unreachable.test", HOSTILE_SUBJECT
    )
    fail_once(store, queue_id, "bob@unreachable.test")
    clock = Clock()
    backend = SqliteBackend(store, config.domains)
    pages = AdminPages(
        config,
        backend,
        Metrics(),
        AuthThrottle(delay_after=100, lockout_after=4, base_delay=0.0),
        sessions=Sessions(clock=clock),
        clock=clock,
        ports=PORTS,
    )
    app = https_app(config, backend, Metrics(), {"https": 443}, admin=pages)
    # The cookies are Secure (and __Host-): the test server is plain http on loopback, which
    # the jar is told to treat as a secure origin, as browsers treat http://127.0.0.1.
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    jar = CookieJar(unsafe=True, treat_as_secure_origin=[str(server.make_url("/"))])
    client = TestClient(server, cookie_jar=jar)
    await client.start_server()
    try:
        yield Site(client, store, config, pages, clock, queue_id)
    finally:
        await client.close()
        await backend.close()


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


async def log_in(site: Site, user: str = ADMIN, password: str = PASSWORD) -> tuple[int, str]:
    form = await site.client.get("/admin/login")
    token = csrf_of(await form.text())
    answer = await site.client.post(
        "/admin/login",
        data={"csrf": token, "username": user, "password": password},
        allow_redirects=True,
    )
    return answer.status, await answer.text()


async def test_login_page_headers(site: Site) -> None:
    answer = await site.client.get("/admin/login")
    assert answer.status == 200
    assert answer.headers["Content-Security-Policy"] == CSP
    assert "script-src 'self'" in CSP and "'unsafe-inline'" not in CSP
    assert "frame-ancestors 'none'" in CSP
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["Cache-Control"] == "no-store"
    text = await answer.text()
    assert "<script>" not in text and 'src="/admin/static/admin.js"' in text


async def test_pages_need_a_login(site: Site) -> None:
    for path in ("/admin/queue", f"/admin/queue/{site.queue_id}", "/admin/users"):
        answer = await site.client.get(path, allow_redirects=False)
        assert answer.status == 303 and answer.headers["Location"] == "/admin/login", path
    answer = await site.client.post(f"/admin/queue/{site.queue_id}/hold", allow_redirects=False)
    assert answer.status == 303
    assert not site.store.get_queue_entry(site.queue_id).held  # type: ignore[union-attr]


async def test_login_sets_a_strict_session_cookie(site: Site) -> None:
    form = await site.client.get("/admin/login")
    token = csrf_of(await form.text())
    answer = await site.client.post(
        "/admin/login",
        data={"csrf": token, "username": ADMIN, "password": PASSWORD},
        allow_redirects=False,
    )
    assert answer.status == 303 and answer.headers["Location"] == "/admin/queue"
    cookie = next(c for c in answer.headers.getall("Set-Cookie") if c.startswith(COOKIE + "="))
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"secure", "httponly", "samesite=strict", "path=/"} <= attributes
    assert not any(a.startswith("domain") for a in attributes)
    assert answer.headers["Location"].find(cookie.split(";")[0].split("=")[1]) < 0


async def test_login_without_its_form_token_is_refused(site: Site) -> None:
    answer = await site.client.post(
        "/admin/login", data={"username": ADMIN, "password": PASSWORD}, allow_redirects=False
    )
    assert answer.status == 403
    assert COOKIE not in {c.key for c in site.client.session.cookie_jar}


async def test_wrong_password_then_lockout_with_the_shared_counters(site: Site) -> None:
    status, text = await log_in(site, password="wrong password")
    assert status == 401 and "Wrong address or password" in text
    for _ in range(2):
        await log_in(site, password="wrong password")
    status, text = await log_in(site, password="wrong password")  # the 4th: locked out
    assert status == 429
    # The right password does not help while the address is locked out: same counters as
    # SMTP AUTH and POP3 (one AuthThrottle).
    status, _ = await log_in(site)
    assert status == 429
    assert site.pages.throttle.locked("127.0.0.1")


async def test_a_user_without_the_admin_role_is_refused(site: Site) -> None:
    status, text = await log_in(site, USER)
    assert status == 200 and 'href="/admin/queue"' not in text  # their own page, no admin nav
    for path in ("/admin/queue", f"/admin/queue/{site.queue_id}", "/admin/users"):
        answer = await site.client.get(path, allow_redirects=False)
        assert answer.status == 403 and "not an administrator" in await answer.text(), path
    token = csrf_of(text)
    answer = await site.client.post(
        f"/admin/queue/{site.queue_id}/hold", data={"csrf": token, "confirmed": "yes"}
    )
    assert answer.status == 403
    assert not site.store.get_queue_entry(site.queue_id).held  # type: ignore[union-attr]


async def test_queue_shows_the_message_escaped(site: Site) -> None:
    status, text = await log_in(site)
    assert status == 200
    assert site.queue_id in text
    assert "bob@unreachable.test" in text
    assert "&quot;&lt;b&gt;evil&quot;@example.test" in text or "&lt;b&gt;evil" in text
    assert "<b>evil" not in text
    assert "networkerror" in text and "connection refused by mx.unreachable.test" in text
    story = await site.client.get(f"/admin/queue/{site.queue_id}")
    page = await story.text()
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#x27;subject&#x27;)&lt;/script&gt;" in page
    assert "mx.unreachable.test" in page and "connect" in page
    assert "Next try at" in page


async def test_filters(site: Site) -> None:
    await log_in(site)
    for query, present in (
        ("domain=unreachable.test", True),
        ("domain=elsewhere.test", False),
        ("reason=networkerror", True),
        ("reason=userunknown", False),
        ("state=deferred", True),
        ("state=held", False),
    ):
        text = await (await site.client.get(f"/admin/queue?{query}")).text()
        assert (f'data-id="{site.queue_id}"' in text) is present, query


async def test_actions_need_the_csrf_token_then_a_confirmation(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    _, text = await log_in(site)
    token = csrf_of(text)
    url = f"/admin/queue/{site.queue_id}/hold"
    refused = await site.client.post(url, data={"confirmed": "yes"}, allow_redirects=False)
    assert refused.status == 403 and refused.headers["X-Todoku-Refused"] == "csrf"
    wrong = await site.client.post(url, data={"csrf": "x" * 43, "confirmed": "yes"})
    assert wrong.status == 403
    asked = await site.client.post(url, data={"csrf": token})
    assert asked.status == 200 and "Hold this message" in await asked.text()
    assert not site.store.get_queue_entry(site.queue_id).held  # type: ignore[union-attr]
    with caplog.at_level(logging.INFO, logger="todoku.web.admin"):
        done = await site.client.post(
            url, data={"csrf": token, "confirmed": "yes"}, allow_redirects=False
        )
    assert done.status == 303
    assert done.headers["Location"] == f"/admin/queue/{site.queue_id}?done=hold"
    assert site.store.get_queue_entry(site.queue_id).held  # type: ignore[union-attr]
    assert any(ADMIN in r.getMessage() and "hold" in r.getMessage() for r in caplog.records)
    release = f"/admin/queue/{site.queue_id}/release"
    await site.client.post(release, data={"csrf": token, "confirmed": "yes"})
    entry = site.store.get_queue_entry(site.queue_id)
    assert entry is not None and not entry.held


async def test_bounce_and_delete(site: Site) -> None:
    _, text = await log_in(site)
    token = csrf_of(text)
    await site.client.post(
        f"/admin/queue/{site.queue_id}/bounce", data={"csrf": token, "confirmed": "yes"}
    )
    entry = site.store.get_queue_entry(site.queue_id)
    assert entry is not None
    assert [(r.state, r.reason) for r in entry.recipients] == [("failed", "cancelled")]
    await site.client.post(
        f"/admin/queue/{site.queue_id}/delete", data={"csrf": token, "confirmed": "yes"}
    )
    assert site.store.get_queue_entry(site.queue_id) is None
    gone = await site.client.get(f"/admin/queue/{site.queue_id}")
    assert gone.status == 404


async def test_logout_ends_the_session_on_the_server(site: Site) -> None:
    _, text = await log_in(site)
    cookie = next(c.value for c in site.client.session.cookie_jar if c.key == COOKIE)
    await site.client.post("/admin/logout", data={"csrf": csrf_of(text)})
    assert site.pages.sessions.get(cookie) is None
    # The old cookie, sent again by hand, opens nothing.
    answer = await site.client.get(
        "/admin/queue", headers={"Cookie": f"{COOKIE}={cookie}"}, allow_redirects=False
    )
    assert answer.status == 303


async def test_a_password_change_elsewhere_ends_the_session(site: Site) -> None:
    await log_in(site)
    site.store.set_password(ADMIN, hash_password("another password"))  # todoku user passwd
    answer = await site.client.get("/admin/queue", allow_redirects=False)
    assert answer.status == 303 and answer.headers["Location"] == "/admin/login"
    assert site.pages.sessions.count() == 0


async def test_sessions_expire_when_idle(site: Site) -> None:
    await log_in(site)
    site.clock.now += site.pages.sessions.idle + 1
    answer = await site.client.get("/admin/queue", allow_redirects=False)
    assert answer.status == 303


async def test_users_page_adds_and_resets(site: Site) -> None:
    _, text = await log_in(site)
    token = csrf_of(text)
    added = await site.client.post(
        "/admin/users",
        data={"csrf": token, "address": "carol@example.test", "password": "a long password"},
    )
    assert added.status == 200 and "carol@example.test" in await added.text()
    assert site.store.get_user("carol@example.test") is not None
    outside = await site.client.post(
        "/admin/users",
        data={"csrf": token, "address": "mallory@elsewhere.test", "password": "a long password"},
    )
    assert outside.status == 400 and site.store.get_user("mallory@elsewhere.test") is None
    before = site.store.get_user(USER)
    await site.client.post(
        "/admin/users/password",
        data={"csrf": token, "address": USER, "password": "a new password"},
    )
    after = site.store.get_user(USER)
    assert before is not None and after is not None
    assert before.password_hash != after.password_hash


async def test_bounds_and_unknown_paths(site: Site) -> None:
    _, text = await log_in(site)
    token = csrf_of(text)
    big = await site.client.post(
        "/admin/users/password", data={"csrf": token, "address": USER, "password": "x" * 2000}
    )
    assert big.status == 400
    huge = await site.client.post("/admin/users", data={"csrf": token, "address": "a" * 20000})
    assert huge.status == 413
    assert (await site.client.get("/admin/nothing")).status == 404
    assert (await site.client.get("/admin/static/../routes.py")).status == 404
    assert (await site.client.get(f"/admin/queue/{site.queue_id}/hold")).status == 405
    assert (await site.client.get("/admin/queue/..%2F..")).status == 404
    weird = await site.client.get(
        "/admin/queue?domain=%3Cscript%3E&state=nonsense&reason=" + "a" * 99
    )
    assert weird.status == 200 and "<script>" not in await weird.text()


async def test_language_from_the_browser_and_the_switch(site: Site) -> None:
    await log_in(site)
    ja = await site.client.get(
        f"/admin/queue/{site.queue_id}", headers={"Accept-Language": "ja,en;q=0.5"}
    )
    text = await ja.text()
    assert 'lang="ja"' in text and "次の再送" in text
    en = await site.client.get(
        f"/admin/queue/{site.queue_id}?lang=en", headers={"Accept-Language": "ja"}
    )
    assert 'lang="en"' in await en.text()
    # The switch is remembered (a cookie) over the browser's preference.
    again = await site.client.get("/admin/queue", headers={"Accept-Language": "ja"})
    assert 'lang="en"' in await again.text()


async def test_static_script(site: Site) -> None:
    answer = await site.client.get("/admin/static/admin.js")
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/javascript")
    assert "clipboard" in await answer.text()


async def test_the_admin_role_from_the_users_page_and_its_revocation(site: Site) -> None:
    _, text = await log_in(site)
    token = csrf_of(text)
    granted = await site.client.post(
        "/admin/users/admin", data={"csrf": token, "address": USER, "admin": "yes"}
    )
    assert granted.status == 200
    user = site.store.get_user(USER)
    assert user is not None and user.admin
    # Revoked elsewhere (todoku user admin --revoke): the session ends at the next request.
    site.store.set_admin(ADMIN, False)
    answer = await site.client.get("/admin/users", allow_redirects=False)
    assert answer.status == 303 and answer.headers["Location"] == "/admin/login"


async def test_retry_every_message_to_a_domain(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    _, text = await log_in(site)
    token = csrf_of(text)
    page = await (await site.client.get("/admin/queue?domain=unreachable.test")).text()
    assert 'action="/admin/retry-domain"' in page
    assert 'href="/admin/queue?reason=networkerror"' in page  # a reason filters by itself
    before = site.store.get_queue_entry(site.queue_id)
    assert before is not None and before.next_attempt > site.clock.now
    asked = await site.client.post(
        "/admin/retry-domain", data={"csrf": token, "domain": "unreachable.test"}
    )
    assert "Try the 1 message(s) to unreachable.test again now?" in await asked.text()
    with caplog.at_level(logging.INFO, logger="todoku.web.admin"):
        done = await site.client.post(
            "/admin/retry-domain",
            data={"csrf": token, "domain": "unreachable.test", "confirmed": "yes"},
            allow_redirects=False,
        )
    assert done.status == 303
    after = site.store.get_queue_entry(site.queue_id)
    assert after is not None and after.next_attempt == site.clock.now
    assert any("every message to unreachable.test" in r.getMessage() for r in caplog.records)
    bad = await site.client.post(
        "/admin/retry-domain", data={"csrf": token, "domain": "<script>", "confirmed": "yes"}
    )
    assert bad.status == 400


async def test_a_users_own_page_and_profile(site: Site) -> None:
    status, text = await log_in(site, USER)
    assert status == 200
    assert "<td>mx.example.test</td><td>995</td><td>SSL/TLS</td><td>alice@example.test</td>" in text
    assert "<td>mx.example.test</td><td>587</td><td>STARTTLS</td>" in text
    answer = await site.client.get("/account/mail.mobileconfig")
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/x-apple-aspen-config"
    profile = plistlib.loads(await answer.read())
    assert profile["PayloadType"] == "Configuration"
    (mail,) = profile["PayloadContent"]
    assert mail["PayloadType"] == "com.apple.mail.managed"
    assert mail["EmailAccountType"] == "EmailTypePOP"
    assert (mail["IncomingMailServerHostName"], mail["IncomingMailServerPortNumber"]) == (
        "mx.example.test",
        995,
    )
    assert (mail["OutgoingMailServerPortNumber"], mail["OutgoingMailServerUseSSL"]) == (465, True)
    assert mail["IncomingMailServerUsername"] == USER
    assert not any(
        "password" in key.lower() and key != "OutgoingPasswordSameAsIncomingPassword"
        for key in mail
    )
    assert PASSWORD not in (await answer.read()).decode()


async def test_a_user_changes_their_password(site: Site) -> None:
    _, text = await log_in(site, USER)
    token = csrf_of(text)
    wrong = await site.client.post(
        "/account/password",
        data={
            "csrf": token,
            "current": "not it",
            "password": "new password 1",
            "again": "new password 1",
        },
    )
    assert wrong.status == 400 and "current password is wrong" in await wrong.text()
    mismatch = await site.client.post(
        "/account/password",
        data={
            "csrf": token,
            "current": PASSWORD,
            "password": "new password 1",
            "again": "other one",
        },
    )
    assert mismatch.status == 400
    done = await site.client.post(
        "/account/password",
        data={
            "csrf": token,
            "current": PASSWORD,
            "password": "new password 1",
            "again": "new password 1",
        },
        allow_redirects=False,
    )
    assert done.status == 303 and done.headers["Location"] == "/admin/login?changed=1"
    assert site.pages.sessions.count() == 0
    again = await site.client.get("/account", allow_redirects=False)
    assert again.status == 303
    status, _ = await log_in(site, USER, "new password 1")
    assert status == 200


async def test_undecodable_forms_and_tokens_are_refused_cleanly(site: Site) -> None:
    form = await site.client.get("/admin/login")
    token = csrf_of(await form.text())
    raw = await site.client.post(
        "/admin/login",
        data=b"csrf=" + token.encode() + b"&username=\xff\xfe&password=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert raw.status == 400
    # A login token cookie that is not ASCII, as a client may send: refused, not a crash.
    odd = await site.client.post(
        "/admin/login",
        data={"csrf": "é", "username": ADMIN, "password": PASSWORD},
        headers={"Cookie": "__Host-todoku-login=%C3%A9"},
    )
    assert odd.status == 403


async def test_an_administrator_cannot_remove_their_own_role(site: Site) -> None:
    _, text = await log_in(site)
    answer = await site.client.post(
        "/admin/users/admin", data={"csrf": csrf_of(text), "address": ADMIN, "admin": "no"}
    )
    assert answer.status == 409
    user = site.store.get_user(ADMIN)
    assert user is not None and user.admin
