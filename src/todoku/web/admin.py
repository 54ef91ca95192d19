"""The admin pages (issue 18): log in as a user with the administrator role, see the queue and
every message's story, act on it, check deliverability, manage users.

Served only by the https listener (the http one redirects every path but autoconfiguration).

Security, each point enforced here, not left to the pages:
- Login: the same failure counters as SMTP AUTH and POP3 (``AuthThrottle``, per client address,
  IPv6 per /64): slower answers after a few failures, then a lock-out. The login form carries a
  token matched against a short-lived cookie, so another site cannot log a browser in.
- Sessions: a random cookie (``__Host-``, Secure, HttpOnly, SameSite=Strict) naming a record
  kept here (web/sessions.py), which ends at logout, when idle, at its lifetime, and when the
  user's password, existence or role changes (checked at every request against the directory).
- Every action is a POST carrying the session's CSRF token, compared in constant time; a form
  without it is refused with 403 before anything changes. Every action is logged with the
  administrator's name and address.
- Headers: a Content-Security-Policy with no inline script or style (the one script is
  /admin/static/admin.js), frame-ancestors 'none' and X-Frame-Options DENY, no referrer, no
  caching. No secret is ever in a URL (tokens travel in forms and cookies only).
- Input: bodies bounded by the listener (routes.MAX_BODY); each field and query value has a
  length limit and, where it is a choice, a closed set of values.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, BinaryIO
from urllib.parse import quote

from aiohttp import web

from todoku.config import Config
from todoku.dsn.durations import describe_duration
from todoku.policy.auth import AuthThrottle, hash_password, verify_password
from todoku.proto.smtp.address import AddressError, parse_mailbox
from todoku.queue.schedule import Schedule
from todoku.store.api import QueueEntry
from todoku.store.backend import Storage
from todoku.store.directory import UserExists
from todoku.web import queueview
from todoku.web.html import LANG_COOKIE, Markup, choose_lang, esc, h, page, t
from todoku.web.metrics import Metrics
from todoku.web.sessions import COOKIE, Session, Sessions, same_token

log = logging.getLogger("todoku.web.admin")

LOGIN_COOKIE = "__Host-todoku-login"  # the login form's token (web/sessions.py for the prefix)
LOGIN_TOKEN_AGE = 3600  # seconds the login form stays usable
MAX_ADDRESS = 320
MAX_PASSWORD = 1024
MIN_PASSWORD = 8  # as ``todoku user add``
MAX_DOMAIN = 253
QUEUE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
REASON_WORD = re.compile(r"[a-z]{1,40}")
DOMAIN_TEXT = re.compile(r"[a-z0-9.-]{1,253}")
ACTIONS = ("retry", "hold", "release", "delete", "bounce")
CHECK_TIMEOUT = 30.0  # seconds the deliverability page waits for its DNS answers
HTML = "text/html"
# No inline script or style anywhere: the only script and style sheet are served below.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
STATIC = {"admin.js": "text/javascript", "admin.css": "text/css"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def client_ip(request: web.Request) -> str:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"


async def admin_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every answer under /admin, errors included."""
    if not request.path.startswith(("/admin", "/account")):
        return
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"


async def posted(request: web.Request) -> Mapping[str, Any]:
    """The form of a POST (bounded by the listener's body limit); one that does not decode
    (bytes that are not UTF-8, a broken multipart body) is 400, not an error page."""
    try:
        return await request.post()
    except (ValueError, UnicodeDecodeError) as exc:
        raise web.HTTPBadRequest(text=f"form: cannot be read ({type(exc).__name__})\n") from None


def _field(form: Mapping[str, Any], name: str, limit: int) -> str:
    """A text field of a form, "" when absent; longer than ``limit`` is refused (400)."""
    value = form.get(name, "")
    if not isinstance(value, str):
        raise web.HTTPBadRequest(text=f"{name}: not a text field\n")
    if len(value) > limit:
        raise web.HTTPBadRequest(text=f"{name}: longer than {limit} characters\n")
    return value


@dataclass
class AdminPages:
    config: Config
    storage: Storage  # the user directory (logins, the admin role), the queue, message files
    metrics: Metrics
    throttle: AuthThrottle
    sessions: Sessions = field(default_factory=Sessions)
    clock: Callable[[], float] = time.time
    wake: Callable[[], None] = lambda: None  # tells the queue runner to look again
    static: dict[str, bytes] = field(default_factory=dict)
    ports: Mapping[str, int] = field(default_factory=dict)  # each listener's bound port

    def add_routes(self, app: web.Application) -> None:
        for name in STATIC:
            self.static[name] = resources.files("todoku.web").joinpath("static", name).read_bytes()
        app.on_response_prepare.append(admin_headers)
        router = app.router
        router.add_get("/admin", self.home)
        router.add_get("/admin/", self.home)
        router.add_get("/admin/static/{name}", self.static_file)
        router.add_get("/admin/login", self.login_form)
        router.add_post("/admin/login", self.login)
        router.add_post("/admin/logout", self.logout)
        router.add_get("/admin/queue", self.queue)
        router.add_get("/admin/queue/{id}", self.story)
        router.add_post("/admin/queue/{id}/{action}", self.act)
        router.add_post("/admin/retry-domain", self.retry_domain)
        router.add_get("/admin/deliverability", self.deliverability)
        router.add_get("/admin/users", self.users)
        router.add_post("/admin/users", self.add_user)
        router.add_post("/admin/users/password", self.set_password)
        router.add_post("/admin/users/admin", self.set_admin)
        router.add_get("/account", self.account)
        router.add_post("/account/password", self.change_password)
        router.add_get("/account/mail.mobileconfig", self.mobileconfig)

    # ------------------------------------------------------------------ helpers

    def lang(self, request: web.Request) -> str:
        return choose_lang(
            request.query.get("lang"),
            request.cookies.get(LANG_COOKIE),
            request.headers.get("Accept-Language", ""),
        )

    def respond(
        self,
        request: web.Request,
        title: str,
        body: Markup,
        session: Session | None = None,
        *,
        status: int = 200,
        current: str = "",
        notice: str = "",
    ) -> web.Response:
        lang = self.lang(request)
        text = page(
            lang,
            title,
            body,
            host=self.config.hostname,
            user=session.user if session is not None else None,
            csrf=session.csrf if session is not None else "",
            current=current,
            notice=notice,
            admin=session.admin if session is not None else False,
        )
        response = web.Response(text=text, status=status, content_type=HTML, charset="utf-8")
        if request.query.get("lang") in ("en", "ja"):
            response.set_cookie(
                LANG_COOKIE, lang, max_age=365 * 86400, secure=True, samesite="Strict", path="/"
            )
        return response

    def refused(self, request: web.Request, why: str, status: int = 403) -> web.Response:
        return self.respond(
            request, "todoku", h('<p class="refused">$why</p>', why=why), status=status
        )

    async def session(self, request: web.Request, *, admin: bool = True) -> Session:
        """The logged-in user (with ``admin``: an administrator), else a redirect to the login
        page; a user who is not an administrator gets 403 on the admin pages. The directory is
        asked at every request: a changed password, a removed user or a revoked role ends the
        session."""
        cookie = request.cookies.get(COOKIE)
        session = self.sessions.get(cookie)
        if session is None:
            raise web.HTTPSeeOther("/admin/login")
        user = await self.storage.directory.get_user(session.user)
        revoked = session.admin and (user is None or not user.admin)
        if user is None or user.password_hash != session.password_hash or revoked:
            self.sessions.end(cookie)
            log.info("session of %s ended: password, user or role changed", session.user)
            raise web.HTTPSeeOther("/admin/login")
        if admin and not user.admin:
            lang = self.lang(request)
            page = self.respond(
                request,
                "todoku",
                h(
                    '<p class="refused">$why</p>',
                    why="このアカウントは管理者ではありません。"
                    if lang == "ja"
                    else "This account is not an administrator of this server.",
                ),
                session,
                status=403,
            )
            raise web.HTTPForbidden(text=page.text, content_type=HTML)
        return session

    async def form(self, request: web.Request, session: Session) -> Mapping[str, Any]:
        """The posted form, once its CSRF token is the session's; else 403, nothing done."""
        form = await posted(request)
        token = form.get("csrf")
        if not same_token(token if isinstance(token, str) else None, session.csrf):
            log.warning(
                "admin %s from [%s]: %s %s refused: no valid CSRF token",
                session.user,
                client_ip(request),
                request.method,
                request.path,
            )
            raise self.csrf_refusal(request)
        return form

    def csrf_refusal(self, request: web.Request) -> web.HTTPForbidden:
        lang = self.lang(request)
        why = (
            "このフォームは期限切れか、このサイトから送られたものではありません（CSRF トークンが"
            "ありません）。ページを読み込み直してもう一度どうぞ。"
            if lang == "ja"
            else "This form has expired or did not come from this site (no valid CSRF token): "
            "nothing was changed. Reload the page and try again."
        )
        response = self.refused(request, why)
        return web.HTTPForbidden(
            text=response.text, content_type=HTML, headers={"X-Todoku-Refused": "csrf"}
        )

    def audit(self, request: web.Request, session: Session, what: str) -> None:
        log.info("admin %s from [%s]: %s", session.user, client_ip(request), what)

    # ------------------------------------------------------------------ static, home

    async def static_file(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        return web.Response(
            body=self.static[name],
            headers={"Content-Type": f"{STATIC[name]}; charset=utf-8"},
        )

    async def home(self, request: web.Request) -> web.Response:
        raise web.HTTPSeeOther("/admin/queue")

    # ------------------------------------------------------------------ login, logout

    async def login_form(
        self, request: web.Request, *, status: int = 200, notice: str = ""
    ) -> web.Response:
        logged_in = self.sessions.get(request.cookies.get(COOKIE))
        if logged_in is not None:
            raise web.HTTPSeeOther("/admin/queue" if logged_in.admin else "/account")
        if not notice and request.query.get("changed") == "1":
            notice = (
                "パスワードを変更しました。新しいパスワードでログインしてください。"
                if self.lang(request) == "ja"
                else "Your password was changed: log in with the new one."
            )
        lang = self.lang(request)
        token = request.cookies.get(LOGIN_COOKIE)
        if not token or len(token) > 64:
            token = secrets.token_urlsafe(24)
        body = h(
            """<form method="post" action="/admin/login" class="login">
<input type="hidden" name="csrf" value="$token">
<label>$address <input type="email" name="username" maxlength="320" required autofocus
 autocomplete="username"></label>
<label>$password <input type="password" name="password" maxlength="1024" required
 autocomplete="current-password"></label>
<button type="submit" id="login">$login</button>
</form>""",
            token=token,
            address=t(lang, "address"),
            password=t(lang, "password"),
            login=t(lang, "login"),
        )
        response = self.respond(request, t(lang, "login"), body, status=status, notice=notice)
        response.set_cookie(
            LOGIN_COOKIE,
            token,
            max_age=LOGIN_TOKEN_AGE,
            secure=True,
            httponly=True,
            samesite="Strict",
            path="/",
        )
        return response

    async def login(self, request: web.Request) -> web.Response:
        lang = self.lang(request)
        form = await posted(request)
        token = form.get("csrf")
        expected = request.cookies.get(LOGIN_COOKIE, "")
        if not expected or not same_token(token if isinstance(token, str) else None, expected):
            raise self.csrf_refusal(request)
        ip = client_ip(request)
        if self.throttle.locked(ip):
            log.warning("web login from [%s] refused: locked out after repeated failures", ip)
            return self.refused(
                request,
                "失敗が続いたため、このアドレスからのログインはしばらく受け付けません。"
                if lang == "ja"
                else "Too many failed logins from your address: try again later.",
                status=429,
            )
        username = _field(form, "username", MAX_ADDRESS).strip().lower()
        password = _field(form, "password", MAX_PASSWORD)
        directory = self.storage.directory
        user = await directory.get_user(username) if username else None
        ok = await asyncio.to_thread(
            verify_password, user.password_hash if user is not None else None, password
        )
        if not ok or user is None:
            delay = self.throttle.failure(ip)
            self.metrics.auth_failed("https")
            log.info("web login user=%s from [%s] failed", username, ip)
            if self.throttle.locked(ip):
                return self.refused(
                    request,
                    "失敗が続いたため、このアドレスからのログインはしばらく受け付けません。"
                    if lang == "ja"
                    else "Too many failed logins from your address: try again later.",
                    status=429,
                )
            if delay:
                await asyncio.sleep(delay)
            return await self.login_form(
                request,
                status=401,
                notice="アドレスかパスワードが違います。"
                if lang == "ja"
                else "Wrong address or password.",
            )
        self.throttle.success(ip)
        cookie, _ = self.sessions.create(username, user.password_hash, user.admin)
        log.info("web login user=%s%s from [%s] ok", username, " (administrator)" * user.admin, ip)
        response = web.HTTPSeeOther("/admin/queue" if user.admin else "/account")
        response.set_cookie(COOKIE, cookie, secure=True, httponly=True, samesite="Strict", path="/")
        response.del_cookie(LOGIN_COOKIE, path="/", secure=True, samesite="Strict")
        raise response

    async def logout(self, request: web.Request) -> web.Response:
        session = await self.session(request, admin=False)
        await self.form(request, session)
        self.sessions.end(request.cookies.get(COOKIE))
        self.audit(request, session, "logged out")
        response = web.HTTPSeeOther("/admin/login")
        response.del_cookie(COOKIE, path="/", secure=True, samesite="Strict")
        raise response

    # ------------------------------------------------------------------ the queue

    def _filters(self, request: web.Request) -> queueview.Filters:
        query = request.query
        domain = query.get("domain", "").strip().lower().rstrip(".")[: MAX_DOMAIN + 1]
        reason = query.get("reason", "")[:41]
        state = query.get("state", "")[:20]
        return queueview.Filters(
            domain=domain if DOMAIN_TEXT.fullmatch(domain) else "",
            reason=reason if REASON_WORD.fullmatch(reason) else "",
            state=state if state in queueview.STATES else "",
        )

    async def queue(self, request: web.Request) -> web.Response:
        session = await self.session(request)
        lang = self.lang(request)
        filters = self._filters(request)
        entries = await self.storage.queue.entries()
        now = self.clock()
        rows, total = queueview.queue_rows(entries, filters, now, lang)
        reasons = queueview.reasons_in(entries)

        def options(
            values: list[str] | tuple[str, ...], chosen: str, label: Callable[[str], str]
        ) -> Markup:
            out = [h('<option value="">$any</option>', any=t(lang, "any"))]
            for value in values:
                out.append(
                    h(
                        '<option value="$v"$sel>$label</option>',
                        v=value,
                        sel=Markup(" selected") if value == chosen else Markup(""),
                        label=label(value),
                    )
                )
            return esc(out)

        filter_form = h(
            """<form method="get" action="/admin/queue" class="filters">
<label>$domain_word <input type="text" name="domain" value="$domain" maxlength="253"></label>
<label>$reason_word <select name="reason">$reasons</select></label>
<label>$state_word <select name="state">$states</select></label>
<button type="submit">$filter</button>
</form>""",
            domain_word=t(lang, "domain"),
            domain=filters.domain,
            reason_word=t(lang, "reason"),
            reasons=options(reasons, filters.reason, lambda r: r),
            state_word=t(lang, "state"),
            states=options(queueview.STATES, filters.state, lambda s: t(lang, s)),
            filter=t(lang, "filter"),
        )
        if not rows:
            empty = t(lang, "no_match") if entries else t(lang, "empty_queue")
            body = esc([filter_form, h('<p class="empty">$text</p>', text=empty)])
            return self.respond(
                request,
                t(lang, "queue"),
                body,
                session,
                current="/admin/queue",
                notice=self._done(request, lang),
            )
        table_rows = []
        for row in rows:
            shown = row.recipients[:3]
            more = len(row.recipients) - len(shown)
            recipients = esc(
                [h("<div>$r</div>", r=r) for r in shown]
                + ([h('<div class="more">+$n</div>', n=more)] if more else [])
            )
            next_try = (
                h(
                    '<time datetime="$iso">$rel</time>',
                    iso=queueview.when(row.next_try),
                    rel=queueview.relative(row.next_try - now, lang)
                    if row.next_try > now
                    else ("今すぐ" if lang == "ja" else "now"),
                )
                if row.next_try is not None
                else "—"
            )
            reply = h(
                '<div class="reply">$reply</div><div class="cause">$cause</div>',
                reply=row.last_reply,
                cause=h(
                    '<a href="$href" class="reason"><b>$word</b></a>: $cause',
                    href=f"/admin/queue?reason={quote(row.reason)}",
                    word=row.reason,
                    cause=row.cause,
                )
                if row.reason
                else "",
            )
            table_rows.append(
                h(
                    """<tr data-id="$id" class="state-$state">
<td><a href="/admin/queue/$id">$id</a></td>
<td>$age</td><td class="addr">$sender</td><td class="addr">$recipients</td>
<td>$state_word</td><td>$next</td><td>$reply</td><td class="actions">$actions</td></tr>""",
                    id=row.id,
                    state=row.state,
                    age=describe_duration(row.age, lang),
                    sender=row.sender or "<>",
                    recipients=recipients,
                    state_word=t(lang, row.state),
                    next=next_try,
                    reply=reply,
                    actions=self._action_buttons(lang, session, row.id, row.state),
                )
            )
        retry_domain = (
            h(
                """<form method="post" action="/admin/retry-domain" class="inline">
<input type="hidden" name="csrf" value="$csrf"><input type="hidden" name="domain" value="$domain">
<button type="submit" class="retry">$word</button></form>""",
                csrf=session.csrf,
                domain=filters.domain,
                word=("今すぐ再送: " if lang == "ja" else "Retry now every message to ")
                + filters.domain,
            )
            if filters.domain
            else ""
        )
        shown_note = h("<p>$text</p>", text=f"{len(rows)} / {total}") if total > len(rows) else ""
        body = h(
            """$filters$retry_domain
<table class="queue">
<thead><tr><th>ID</th><th>$age</th><th>$sender</th><th>$recipients</th><th>$state</th>
<th>$next</th><th>$reply</th><th>$actions</th></tr></thead>
<tbody>$rows</tbody></table>$shown""",
            filters=filter_form,
            retry_domain=retry_domain,
            age=t(lang, "age"),
            sender=t(lang, "sender"),
            recipients=t(lang, "recipients"),
            state=t(lang, "state"),
            next=t(lang, "next_try"),
            reply=t(lang, "last_reply"),
            actions=t(lang, "actions"),
            rows=table_rows,
            shown=shown_note,
        )
        return self.respond(
            request,
            t(lang, "queue"),
            body,
            session,
            current="/admin/queue",
            notice=self._done(request, lang),
        )

    def _action_buttons(self, lang: str, session: Session, queue_id: str, state: str) -> Markup:
        actions = ["retry", "release" if state == "held" else "hold", "delete", "bounce"]
        if state == "finishing":
            actions = ["delete"]
        return esc(
            h(
                """<form method="post" action="/admin/queue/$id/$action" class="inline">
<input type="hidden" name="csrf" value="$csrf">
<button type="submit" name="do" value="$action" class="$action">$word</button></form>""",
                id=queue_id,
                action=action,
                csrf=session.csrf,
                word=t(lang, action),
            )
            for action in actions
        )

    def _done(self, request: web.Request, lang: str) -> str:
        done = {
            "retry": ("Will be tried again now.", "今すぐ再送します。"),
            "hold": ("Held.", "保留にしました。"),
            "release": (
                "Released: it is tried again now.",
                "保留を解除しました。すぐに送信します。",
            ),
            "delete": ("Deleted from the queue.", "キューから削除しました。"),
            "bounce": (
                "Returned to the sender: the report goes out at the next run.",
                "差出人への返送を決めました。次の処理で通知を送ります。",
            ),
        }.get(request.query.get("done", ""))
        return "" if done is None else done[1] if lang == "ja" else done[0]

    def _queue_id(self, request: web.Request) -> str:
        queue_id = request.match_info["id"]
        if not QUEUE_ID.fullmatch(queue_id):
            raise web.HTTPNotFound()
        return queue_id

    async def _entry(self, request: web.Request, queue_id: str) -> QueueEntry:
        entry = await self.storage.queue.get(queue_id)
        if entry is None:
            lang = self.lang(request)
            raise web.HTTPNotFound(
                text=self.refused(
                    request,
                    f"{queue_id}: このメールはキューにありません（配送済みか削除済み）。"
                    if lang == "ja"
                    else f"{queue_id}: no such message in the queue (delivered or removed).",
                    status=404,
                ).text,
                content_type=HTML,
            )
        return entry

    async def story(self, request: web.Request) -> web.Response:
        session = await self.session(request)
        lang = self.lang(request)
        queue_id = self._queue_id(request)
        entry = await self._entry(request, queue_id)
        history = await self.storage.queue.history(entry.id)
        head, routes = await self._story_facts(entry)
        now = self.clock()
        from todoku.queue.routing import choose

        def route_of(domain: str, failed_before: int) -> str:
            relay = choose(self.config.relays, domain, failed_before).relay
            return f"relay {relay.key}" if relay is not None else f"MX {domain}"

        attempts = queueview.attempt_rows(history, route_of)
        delivery = self.config.delivery
        schedule = Schedule(delivery.retry, delivery.delay_warning, delivery.max_lifetime)
        steps = queueview.next_steps(entry, schedule, now, lang)
        explained = queueview.explanations(entry, lang)
        state = queueview.state_of(entry)
        facts = h(
            """<dl class="facts">
<dt>$sender_word</dt><dd class="addr">$sender</dd>
<dt>$recipients_word</dt><dd class="addr">$recipients</dd>
<dt>$received_word</dt><dd>$received ($age)</dd>
<dt>$size_word</dt><dd>$size</dd>
<dt>$state_word</dt><dd class="state">$state</dd>
</dl>""",
            sender_word=t(lang, "sender"),
            sender=entry.sender or "<>",
            recipients_word=t(lang, "recipients"),
            recipients=[
                h("<div>$a <small>($s)</small></div>", a=r.address, s=r.state)
                for r in entry.recipients
            ],
            received_word=t(lang, "received"),
            received=queueview.when(entry.received_at),
            age=queueview.relative(entry.received_at - now, lang),
            size_word=t(lang, "size"),
            size=f"{entry.size:,} octets",
            state_word=t(lang, "state"),
            state=t(lang, state),
        )
        next_html = h(
            '<h2>$title</h2><ul class="next">$items</ul>$routes',
            title=t(lang, "what_next"),
            items=[h("<li>$s</li>", s=s) for s in steps],
            routes=h(
                '<ul class="routes">$items</ul>',
                items=[
                    h("<li>$d: $why</li>", d=str(r["domain"]), why=str(r["why"])) for r in routes
                ],
            )
            if routes and state != "finishing"
            else "",
        )
        explain_html = (
            h(
                "<h2>$title</h2>$items",
                title=t(lang, "explanation"),
                items=[
                    h(
                        """<section class="explain"><h3 class="addr">$r <small>$reason</small></h3>
<p>$cause</p><p>$remedy</p></section>""",
                        r=e.recipient,
                        reason=e.reason,
                        cause=e.cause,
                        remedy=e.remedy,
                    )
                    for e in explained
                ],
            )
            if explained
            else ""
        )
        if attempts:
            attempt_html = h(
                """<h2>$title</h2><table class="attempts"><thead><tr><th>$time</th><th>$rcpt</th>
<th>$route</th><th>$host</th><th>$phase</th><th>$reply</th></tr></thead><tbody>$rows</tbody>
</table>""",
                title=t(lang, "attempts"),
                time=t(lang, "time"),
                rcpt=t(lang, "recipient"),
                route=t(lang, "route"),
                host=t(lang, "remote_host"),
                phase=t(lang, "phase"),
                reply=t(lang, "reply"),
                rows=[
                    h(
                        """<tr class="attempt-$state"><td>$time</td><td class="addr">$rcpt</td>
<td>$route</td><td>$host</td><td>$phase</td><td>$reply <small>$reason</small></td></tr>""",
                        state=a.state,
                        time=queueview.when(a.time),
                        rcpt=a.recipient,
                        route=a.route,
                        host=a.remote_host or "—",
                        phase=a.phase,
                        reply=a.reply,
                        reason=a.reason,
                    )
                    for a in attempts
                ],
            )
        else:
            attempt_html = h(
                "<h2>$title</h2><p>$none</p>",
                title=t(lang, "attempts"),
                none=t(lang, "no_attempts"),
            )
        body = h(
            """$facts<div class="actions">$actions</div>$next$explain$attempts
<h2>$header_word</h2><pre class="header">$head</pre>
<p><a href="/admin/queue">← $queue</a></p>""",
            facts=facts,
            actions=self._action_buttons(lang, session, entry.id, state),
            next=next_html,
            explain=explain_html,
            attempts=attempt_html,
            header_word=t(lang, "header"),
            head=head,
            queue=t(lang, "queue"),
        )
        return self.respond(
            request,
            f"{t(lang, 'story')} {entry.id}",
            body,
            session,
            current="/admin/queue",
            notice=self._done(request, lang),
        )

    async def _story_facts(self, entry: QueueEntry) -> tuple[str, list[dict[str, Any]]]:
        """The header (bounded) and the next routes, read off the event loop."""
        from todoku.ingest import HEADER_SCAN_LIMIT
        from todoku.queue.admin import next_routes

        def read(handle: BinaryIO) -> bytes:
            with handle:
                return handle.read(HEADER_SCAN_LIMIT).partition(b"\r\n\r\n")[0]

        try:
            head = await asyncio.to_thread(read, await self.storage.blobs.open(entry.blob_id))
        except OSError:
            head = b""
        routes = await asyncio.to_thread(next_routes, self.config, entry)
        return head.decode("utf-8", "replace"), routes

    async def act(self, request: web.Request) -> web.Response:
        session = await self.session(request)
        form = await self.form(request, session)
        lang = self.lang(request)
        queue_id = self._queue_id(request)
        action = request.match_info["action"]
        if action not in ACTIONS:
            raise web.HTTPNotFound()
        entry = await self._entry(request, queue_id)
        if _field(form, "confirmed", 3) != "yes":
            return self._confirm(request, session, lang, entry, action)
        now = self.clock()
        queue = self.storage.queue
        if action == "retry":
            await queue.flush(queue_id, None, now)
        elif action in ("hold", "release"):
            await queue.hold(queue_id, action == "hold", now)
        elif action == "delete":
            await queue.delete(queue_id)
        else:
            # As ``todoku queue bounce``: every recipient not yet delivered fails as the
            # administrator's decision, and the runner sends the report at once.
            from todoku.queue.admin import administrator_results

            await queue.record_results(
                queue_id, administrator_results(entry, self.config.hostname), now
            )
            await queue.hold(queue_id, False, now)
            await queue.flush(queue_id, None, now)
        if action != "hold":
            await asyncio.to_thread(self.wake)
        self.audit(request, session, f"queue {action} {queue_id} (from <{entry.sender}>)")
        target = "/admin/queue" if action == "delete" else f"/admin/queue/{queue_id}"
        raise web.HTTPSeeOther(f"{target}?done={action}")

    async def retry_domain(self, request: web.Request) -> web.Response:
        """Retry now every message with a recipient at one domain (after its problem is fixed:
        its DNS, its server, a block lifted), as ``todoku queue flush --domain``."""
        session = await self.session(request)
        form = await self.form(request, session)
        lang = self.lang(request)
        domain = _field(form, "domain", MAX_DOMAIN).strip().lower().rstrip(".")
        if not DOMAIN_TEXT.fullmatch(domain):
            raise web.HTTPBadRequest(text="domain: not a domain name\n")
        if _field(form, "confirmed", 3) != "yes":
            entries = await self.storage.queue.entries()
            count = sum(queueview.Filters(domain=domain).matches(e) for e in entries)
            body = h(
                """<p class="question">$question</p>
<form method="post" action="/admin/retry-domain">
<input type="hidden" name="csrf" value="$csrf"><input type="hidden" name="domain" value="$domain">
<input type="hidden" name="confirmed" value="yes">
<button type="submit" id="confirm" class="retry">$word</button>
<a href="/admin/queue?domain=$domain" class="cancel">$cancel</a></form>""",
                question=f"{domain} 宛てのメール {count} 通を今すぐ再送しますか？"
                if lang == "ja"
                else f"Try the {count} message(s) to {domain} again now?",
                csrf=session.csrf,
                domain=domain,
                word=t(lang, "retry"),
                cancel=t(lang, "cancel"),
            )
            return self.respond(request, t(lang, "confirm"), body, session, current="/admin/queue")
        count = await self.storage.queue.flush(None, domain, self.clock())
        await asyncio.to_thread(self.wake)
        self.audit(request, session, f"queue retry every message to {domain} ({count})")
        raise web.HTTPSeeOther(f"/admin/queue?domain={quote(domain)}&done=retry")

    def _confirm(
        self, request: web.Request, session: Session, lang: str, entry: QueueEntry, action: str
    ) -> web.Response:
        questions = {
            "retry": ("Try this message again now?", "このメールを今すぐ再送しますか？"),
            "hold": (
                "Hold this message (no tries until released)?",
                "このメールを保留にしますか（解除するまで送信しません）？",
            ),
            "release": (
                "Release this message (it is tried at once)?",
                "このメールの保留を解除しますか（すぐに送信します）？",
            ),
            "delete": (
                "Delete this message from the queue? The sender is not told.",
                "このメールをキューから削除しますか？差出人には知らせません。",
            ),
            "bounce": (
                "Give up on this message and return it to its sender with a report?",
                "このメールの配送をあきらめ、差出人に通知して返送しますか？",
            ),
        }[action]
        body = h(
            """<p class="question">$question</p>
<dl class="facts"><dt>ID</dt><dd>$id</dd><dt>$sender_word</dt><dd class="addr">$sender</dd>
<dt>$recipients_word</dt><dd class="addr">$recipients</dd></dl>
<form method="post" action="/admin/queue/$id/$action">
<input type="hidden" name="csrf" value="$csrf">
<input type="hidden" name="confirmed" value="yes">
<button type="submit" id="confirm" class="$action">$word</button>
<a href="/admin/queue/$id" class="cancel">$cancel</a>
</form>""",
            question=questions[1] if lang == "ja" else questions[0],
            id=entry.id,
            sender_word=t(lang, "sender"),
            sender=entry.sender or "<>",
            recipients_word=t(lang, "recipients"),
            recipients=[h("<div>$a</div>", a=r.address) for r in entry.recipients],
            action=action,
            csrf=session.csrf,
            word=t(lang, action),
            cancel=t(lang, "cancel"),
        )
        return self.respond(request, t(lang, "confirm"), body, session, current="/admin/queue")

    # ------------------------------------------------------------------ deliverability

    async def deliverability(self, request: web.Request) -> web.Response:
        session = await self.session(request)
        lang = self.lang(request)
        from todoku.web.deliverability import check, render

        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                report = await check(self.config, lang)
        except TimeoutError:
            report = None
        daily = self.metrics.daily
        days = daily.days() if daily is not None else []
        body = render(report, lang, days, daily.rows() if daily is not None else [])
        return self.respond(
            request, t(lang, "deliverability"), body, session, current="/admin/deliverability"
        )

    # ------------------------------------------------------------------ users

    async def users(
        self, request: web.Request, *, notice: str = "", status: int = 200
    ) -> web.Response:
        session = await self.session(request)
        lang = self.lang(request)
        users = await self.storage.directory.users()
        rows = []
        for user in users:
            admin = user.admin
            rows.append(
                h(
                    """<tr data-user="$address"><td class="addr">$address</td><td>$created</td>
<td>$admin</td><td><form method="post" action="/admin/users/password" class="inline">
<input type="hidden" name="csrf" value="$csrf"><input type="hidden" name="address" value="$address">
<input type="password" name="password" minlength="8" maxlength="1024" required
 autocomplete="new-password" aria-label="$new_password" placeholder="$new_password">
<button type="submit">$set_password</button></form>
<form method="post" action="/admin/users/admin" class="inline">
<input type="hidden" name="csrf" value="$csrf"><input type="hidden" name="address" value="$address">
<input type="hidden" name="admin" value="$flip"><button type="submit">$flip_word</button></form>
</td></tr>""",
                    address=user.address,
                    created=time.strftime("%Y-%m-%d", time.gmtime(user.created_at)),
                    admin=t(lang, "yes") if admin else t(lang, "no"),
                    csrf=session.csrf,
                    new_password=t(lang, "new_password"),
                    set_password=t(lang, "set_password"),
                    flip="no" if admin else "yes",
                    flip_word=t(lang, "remove_admin") if admin else t(lang, "make_admin"),
                )
            )
        body = h(
            """<table class="users"><thead><tr><th>$address</th><th>$created</th><th>$admin</th>
<th>$actions</th></tr></thead><tbody>$rows</tbody></table>
<h2>$add</h2>
<form method="post" action="/admin/users" class="add-user">
<input type="hidden" name="csrf" value="$csrf">
<label>$address <input type="email" name="address" maxlength="320" required></label>
<label>$password <input type="password" name="password" minlength="8" maxlength="1024" required
 autocomplete="new-password"></label>
<label><input type="checkbox" name="admin" value="yes"> $admin</label>
<button type="submit">$add</button>
</form>""",
            address=t(lang, "address"),
            created=t(lang, "created"),
            admin=t(lang, "admin"),
            actions=t(lang, "actions"),
            rows=rows,
            add=t(lang, "add_user"),
            csrf=session.csrf,
            password=t(lang, "password"),
        )
        return self.respond(
            request,
            t(lang, "users"),
            body,
            session,
            current="/admin/users",
            notice=notice,
            status=status,
        )

    def _local_address(self, text: str) -> str | None:
        try:
            address = parse_mailbox(text.strip())
        except AddressError:
            return None
        if address.domain not in self.config.domains:
            return None
        return address.key()

    async def add_user(self, request: web.Request) -> web.Response:
        session = await self.session(request)
        form = await self.form(request, session)
        lang = self.lang(request)
        address = self._local_address(_field(form, "address", MAX_ADDRESS))
        password = _field(form, "password", MAX_PASSWORD)
        admin = _field(form, "admin", 3) == "yes"
        ja = lang == "ja"
        if address is None:
            domains = ", ".join(self.config.domains)
            return await self.users(
                request,
                notice=f"ローカルドメイン（{domains}）のアドレスを入力してください。"
                if ja
                else f"Give an address at a local domain ({domains}).",
                status=400,
            )
        if len(password) < MIN_PASSWORD:
            return await self.users(
                request,
                notice="パスワードは 8 文字以上にしてください。"
                if ja
                else "Use a password of at least 8 characters.",
                status=400,
            )
        password_hash = await asyncio.to_thread(hash_password, password)
        try:
            await self.storage.directory.add_user(address, password_hash, admin=admin)
        except UserExists:
            return await self.users(
                request,
                notice=f"{address}: 既にあります。" if ja else f"{address}: already exists.",
                status=409,
            )
        self.audit(request, session, f"user add {address}{' (administrator)' if admin else ''}")
        raise web.HTTPSeeOther("/admin/users")

    async def set_password(self, request: web.Request) -> web.Response:
        session = await self.session(request)
        form = await self.form(request, session)
        lang = self.lang(request)
        address = _field(form, "address", MAX_ADDRESS).strip().lower()
        password = _field(form, "password", MAX_PASSWORD)
        if len(password) < MIN_PASSWORD:
            return await self.users(
                request,
                notice="パスワードは 8 文字以上にしてください。"
                if lang == "ja"
                else "Use a password of at least 8 characters.",
                status=400,
            )
        password_hash = await asyncio.to_thread(hash_password, password)
        if not await self.storage.directory.set_password(address, password_hash):
            raise web.HTTPNotFound()
        ended = self.sessions.end_user(address)
        self.audit(request, session, f"user password {address} ({ended} session(s) ended)")
        raise web.HTTPSeeOther("/admin/users")

    async def set_admin(self, request: web.Request) -> web.Response:
        session = await self.session(request)
        form = await self.form(request, session)
        address = _field(form, "address", MAX_ADDRESS).strip().lower()
        admin = _field(form, "admin", 3) == "yes"
        if not admin and address == session.user:
            # Another administrator may; one's own click would lock out the last one.
            ja = self.lang(request) == "ja"
            return await self.users(
                request,
                notice="自分の管理者権限は外せません（別の管理者が外せます）。"
                if ja
                else "You cannot remove your own administrator role (another administrator can).",
                status=409,
            )
        if not await self.storage.directory.set_admin(address, admin):
            raise web.HTTPNotFound()
        if not admin:
            self.sessions.end_user(address)
        self.audit(request, session, f"user admin {address} {'granted' if admin else 'revoked'}")
        raise web.HTTPSeeOther("/admin/users")

    # ------------------------------------------------------------------ a user's own page

    async def account(
        self, request: web.Request, *, notice: str = "", status: int = 200
    ) -> web.Response:
        """Any user's own page: where to point a mail program (from the listeners this server
        runs, as autoconfiguration says it), an Apple profile, and a password change."""
        from todoku.web import autoconfig

        session = await self.session(request, admin=False)
        lang = self.lang(request)
        settings = autoconfig.client_settings(self.config, self.ports)

        def rows(servers: tuple[autoconfig.MailServer, ...]) -> list[Markup]:
            if not servers:
                none = "このサーバーでは提供していません。" if lang == "ja" else "Not offered here."
                return [h('<tr><td colspan="4">$none</td></tr>', none=none)]
            return [
                h(
                    "<tr><td>$host</td><td>$port</td><td>$security</td><td>$user</td></tr>",
                    host=server.hostname,
                    port=server.port,
                    security="SSL/TLS" if server.socket_type == "SSL" else "STARTTLS",
                    user=session.user,
                )
                for server in servers
            ]

        profile = (
            h(
                '<p><a href="/account/mail.mobileconfig" download>$text</a></p>',
                text=t(lang, "profile"),
            )
            if settings.incoming and settings.outgoing
            else ""
        )
        body = h(
            """<dl class="facts"><dt>$address_word</dt><dd class="addr">$address</dd></dl>
<h2>$settings_word</h2>
<table class="settings"><thead><tr><th>$server</th><th>$port</th><th>$security</th>
<th>$username</th></tr></thead>
<tbody><tr><th colspan="4">$incoming</th></tr>$incoming_rows
<tr><th colspan="4">$outgoing</th></tr>$outgoing_rows</tbody></table>
$profile
<h2>$change</h2>
<form method="post" action="/account/password" class="add-user">
<input type="hidden" name="csrf" value="$csrf">
<label>$current <input type="password" name="current" maxlength="1024" required
 autocomplete="current-password"></label>
<label>$new <input type="password" name="password" minlength="8" maxlength="1024" required
 autocomplete="new-password"></label>
<label>$again <input type="password" name="again" minlength="8" maxlength="1024" required
 autocomplete="new-password"></label>
<button type="submit" id="change-password">$change</button>
</form>""",
            address_word=t(lang, "address"),
            address=session.user,
            settings_word=t(lang, "mail_settings"),
            server=t(lang, "server"),
            port=t(lang, "port"),
            security=t(lang, "security"),
            username=t(lang, "username"),
            incoming=t(lang, "incoming"),
            incoming_rows=rows(settings.incoming),
            outgoing=t(lang, "outgoing"),
            outgoing_rows=rows(settings.outgoing),
            profile=profile,
            change=t(lang, "change_password"),
            csrf=session.csrf,
            current=t(lang, "current_password"),
            new=t(lang, "new_password"),
            again=t(lang, "again"),
        )
        return self.respond(
            request,
            t(lang, "account"),
            body,
            session,
            current="/account",
            notice=notice,
            status=status,
        )

    async def change_password(self, request: web.Request) -> web.Response:
        """A user changes their own password: the current one first (a wrong one counts as a
        failed login, in the same counters), then every session of theirs ends, this one too."""
        session = await self.session(request, admin=False)
        form = await self.form(request, session)
        ja = self.lang(request) == "ja"
        ip = client_ip(request)
        current = _field(form, "current", MAX_PASSWORD)
        password = _field(form, "password", MAX_PASSWORD)
        again = _field(form, "again", MAX_PASSWORD)
        if self.throttle.locked(ip):
            return self.refused(
                request,
                "失敗が続いたため、しばらく受け付けません。"
                if ja
                else "Too many failed logins from your address: try again later.",
                status=429,
            )
        user = await self.storage.directory.get_user(session.user)
        ok = await asyncio.to_thread(
            verify_password, user.password_hash if user is not None else None, current
        )
        if not ok:
            delay = self.throttle.failure(ip)
            self.metrics.auth_failed("https")
            log.info("user %s from [%s]: password change refused: wrong password", session.user, ip)
            if delay:
                await asyncio.sleep(delay)
            return await self.account(
                request,
                notice="現在のパスワードが違います。" if ja else "The current password is wrong.",
                status=400,
            )
        if len(password) < MIN_PASSWORD or password != again:
            return await self.account(
                request,
                notice="新しいパスワードは 8 文字以上で、2 回とも同じにしてください。"
                if ja
                else "Give the same new password twice, at least 8 characters long.",
                status=400,
            )
        password_hash = await asyncio.to_thread(hash_password, password)
        await self.storage.directory.set_password(session.user, password_hash)
        ended = self.sessions.end_user(session.user)
        log.info(
            "user %s from [%s]: changed their password (%d session(s) ended)",
            session.user,
            ip,
            ended,
        )
        response = web.HTTPSeeOther("/admin/login?changed=1")
        response.del_cookie(COOKIE, path="/", secure=True, samesite="Strict")
        raise response

    async def mobileconfig(self, request: web.Request) -> web.Response:
        """The Apple configuration profile of the logged-in user (no password inside)."""
        from todoku.web import autoconfig

        session = await self.session(request, admin=False)
        settings = autoconfig.client_settings(self.config, self.ports)
        try:
            body = autoconfig.apple_profile(settings, session.user, self.config.hostname)
        except ValueError:
            raise web.HTTPNotFound() from None
        return web.Response(
            body=body,
            headers={
                "Content-Type": "application/x-apple-aspen-config",
                "Content-Disposition": 'attachment; filename="mail.mobileconfig"',
            },
        )
