"""The aiohttp applications of the https and http listeners.

``https_app``: autoconfiguration (Thunderbird, Autodiscover), the MTA-STS policy for any Host
(``mta-sts.<domain>`` of every local domain points here, dns-records), ``/metrics`` and the
admin pages under ``/admin`` (web/admin.py).
``http_app``: autoconfiguration (Thunderbird asks ``http://autoconfig.<domain>/`` first) and a
redirect of everything else to the https listener.

Invariants: every request body is bounded (``MAX_BODY``, 413 past it) and so are the headers
(aiohttp's line and field limits, web/server.py); a path that is not listed here is 404; no
answer is built from the Host header, so a client cannot make us name another server (redirects
and URLs use the configured host name); nothing here blocks the event loop (the queue is read
in a worker thread).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from todoku.config import Config
from todoku.mailauth.mta_sts import policy_text
from todoku.store.backend import Storage
from todoku.store.queue import Queue
from todoku.web import autoconfig
from todoku.web.admin import AdminPages
from todoku.web.metrics import Metrics

log = logging.getLogger("todoku.web")

# An Autodiscover request is a few hundred octets; nothing else here takes a body.
MAX_BODY = 16 * 1024
XML = "application/xml"
AUTOCONFIG_PATHS = ("/.well-known/autoconfig/mail/config-v1.1.xml", "/mail/config-v1.1.xml")
AUTODISCOVER_XML = ("/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml")
AUTODISCOVER_JSON = ("/autodiscover/autodiscover.json", "/Autodiscover/Autodiscover.json")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SessionSource = Callable[[], Iterable[str]]  # the listener name of each open session


def https_url(config: Config, ports: Mapping[str, int], path: str) -> str:
    port = ports.get("https", 443)
    return f"https://{config.hostname}{'' if port == 443 else f':{port}'}{path}"


@web.middleware
async def bounded(request: web.Request, handler: Handler) -> web.StreamResponse:
    """413 for a declared body over ``MAX_BODY`` before any handler runs (a chunked body is cut
    by ``client_max_size`` when read)."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(MAX_BODY, request.content_length)
    return await handler(request)


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every answer, errors included: no type sniffing, and no library version on show."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Server"] = "todoku"


def _base_app() -> web.Application:
    app = web.Application(client_max_size=MAX_BODY, middlewares=[bounded])
    app.on_response_prepare.append(_headers)
    return app


def _add_autoconfig(app: web.Application, settings: autoconfig.ClientSettings) -> None:
    async def thunderbird(request: web.Request) -> web.Response:
        given = request.query.get("emailaddress")
        address = None
        if given is not None:
            address = autoconfig.clean_address(given)
            if address is None:
                raise web.HTTPBadRequest(text="emailaddress: not an address\n")
        body = autoconfig.thunderbird(settings, address)
        return web.Response(body=body, content_type=XML, charset="utf-8")

    for path in AUTOCONFIG_PATHS:
        app.router.add_get(path, thunderbird)


def https_app(
    config: Config,
    storage: Storage,
    metrics: Metrics,
    ports: Mapping[str, int],
    sessions: SessionSource = lambda: (),
    admin: AdminPages | None = None,
) -> web.Application:
    """``ports``: the port each listener is bound to; ``sessions``: the open sessions now;
    ``admin``: the admin pages (web/admin.py), served under /admin."""
    app = _base_app()
    if admin is not None:
        admin.add_routes(app)
    settings = autoconfig.client_settings(config, ports)
    _add_autoconfig(app, settings)
    policy = policy_text(config).encode("ascii")
    xml_url = https_url(config, ports, AUTODISCOVER_XML[0])

    async def autodiscover_xml(request: web.Request) -> web.Response:
        body = await request.read()  # client_max_size: 413 past MAX_BODY
        try:
            address = autoconfig.autodiscover_request(body)
        except autoconfig.AutodiscoverError as exc:
            raise web.HTTPBadRequest(text=f"{exc}\n") from None
        answer = autoconfig.autodiscover_response(settings, address)
        return web.Response(body=answer, content_type=XML, charset="utf-8")

    async def autodiscover_json(request: web.Request) -> web.Response:
        given = request.match_info.get("address") or request.query.get("Email", "")
        if autoconfig.clean_address(given) is None:
            raise web.HTTPBadRequest(text="not an address\n")
        status, answer = autodiscover_v2(request.query.get("Protocol", ""))
        return web.json_response(answer, status=status, dumps=json.dumps)

    def autodiscover_v2(protocol: str) -> tuple[int, dict[str, str]]:
        return autoconfig.autodiscover_v2(protocol, xml_url)

    async def mta_sts(request: web.Request) -> web.Response:
        # RFC 8461 §3.3: served with media type "text/plain"; the body is the policy only.
        return web.Response(body=policy, content_type="text/plain", charset="utf-8")

    async def scrape(request: web.Request) -> web.Response:
        check_metrics_access(config, request)
        await read_state(storage.queue, metrics, sessions)
        return web.Response(
            body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    for path in AUTODISCOVER_XML:
        app.router.add_post(path, autodiscover_xml)
    for path in AUTODISCOVER_JSON:
        app.router.add_get(path, autodiscover_json)
        app.router.add_get(path + "/v1.0/{address}", autodiscover_json)
    app.router.add_get("/.well-known/mta-sts.txt", mta_sts)
    app.router.add_get("/metrics", scrape)
    return app


def http_app(config: Config, ports: Mapping[str, int]) -> web.Application:
    """Port 80: autoconfiguration, and every other path redirected to the https listener (404
    when there is none). The redirect names the configured host, never the request's Host."""
    app = _base_app()
    _add_autoconfig(app, autoconfig.client_settings(config, ports))

    async def redirect(request: web.Request) -> web.Response:
        if "https" not in ports:
            raise web.HTTPNotFound()
        raise web.HTTPMovedPermanently(https_url(config, ports, request.rel_url.path_qs))

    app.router.add_route("*", "/{tail:.*}", redirect)
    return app


def check_metrics_access(config: Config, request: web.Request) -> None:
    """``[web] metrics_token`` set: ``Authorization: Bearer <token>`` (compared in constant
    time). Unset: only clients on loopback may read metrics."""
    token = config.web.metrics_token
    if token is None:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        try:
            loopback = peer is not None and ipaddress.ip_address(peer[0]).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise web.HTTPForbidden(text="metrics: only on loopback without web.metrics_token\n")
        return
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Bearer realm="todoku metrics"'})


async def read_state(queue: Queue, metrics: Metrics, sessions: SessionSource) -> None:
    """The gauges that describe state now: sessions (counted on the loop, cheap), and the queue
    (one query, off the event loop: a long queue never stalls sessions)."""
    metrics.sessions.clear()
    for listener, count in Counter(sessions()).items():
        metrics.sessions.labels(listener).set(count)
    try:
        schedule = await queue.due()
    except Exception:
        log.exception("metrics: reading the queue failed")
        metrics.scrape_errors.inc()
        return
    metrics.queue_messages.set(len(schedule))
    oldest = min((due.received_at for due in schedule), default=None)
    metrics.queue_oldest.set(0.0 if oldest is None else max(0.0, time.time() - oldest))
