"""``todoku diagnose --submission HOST:PORT --user USER``: do a mail program's sending settings work?

The check does what a mail program does: connect, TLS (implicit on 465, else STARTTLS unless
told otherwise; with ``--tls auto`` on another port, a server that stays silent for
``AUTO_TLS_WAIT`` seconds is tried again with TLS from the first byte, as 465-style ports on other
numbers wait for the client's TLS hello), EHLO, the AUTH mechanisms offered, login, then MAIL FROM:<from> and a RCPT TO
the From address itself (never DATA; RSET, QUIT). Certificates are verified against the
system's CAs and the server name, like a mail program; a bad certificate is reported as a
warning and the remaining steps go on over an unverified connection, so one run shows every
problem. A POP3 or IMAP greeting is named as such: the user put the incoming server's port in the
outgoing server's settings.

The same checker follows a ``[[relay]]`` for ``todoku diagnose ADDRESS`` (``diag.relay``): then it
dials the address the queue would, verifies with the relay's CA file and never goes on after a
certificate problem (the queue would not either), and asks RCPT TO for the recipient.
"""

from __future__ import annotations

import base64
import socket
import ssl

from todoku.diag import probe
from todoku.diag.report import FAIL, OK, WARN, Report, Step, reply_step, text
from todoku.net.smtp_client import SmtpSession
from todoku.proto.smtp import client as proto

IMPLICIT_TLS_PORT = 465  # RFC 8314 §3.3: submissions, TLS from the first byte
# --tls auto elsewhere: an SMTP server greets at once (RFC 5321 §3.1); a server silent this long
# waits for our TLS hello. Short, so the whole check stays well inside --timeout.
AUTO_TLS_WAIT = 3.0
TLS_MODES = ("auto", "implicit", "starttls", "none")


def parse_target(target: str) -> tuple[str, int] | None:
    """``host:587`` / ``[::1]:587`` → (host, port); None when it is not HOST:PORT."""
    if target.startswith("["):
        host, _, rest = target[1:].partition("]")
        port_text = rest.removeprefix(":")
    else:
        host, _, port_text = target.rpartition(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return None
    return host, int(port_text)


class _Stop(Exception):
    """A failing step was recorded; the run ends."""


class _TryImplicit(Exception):
    """No plain-text greeting in AUTO_TLS_WAIT seconds: dial again with implicit TLS."""


async def diagnose_submission(
    target: str,
    *,
    user: str,
    password: str,
    sender: str,
    tls_mode: str,
    helo_name: str,
    lang: str,
    timeout: float,
) -> Report:
    report = Report("submission", target, lang)
    parsed = parse_target(target)
    if parsed is None:
        report.add(
            Step(
                "connect",
                FAIL,
                target,
                text(lang, "sub_bad_target", target=target),
                text(lang, "sub_refused_fix"),
            )
        )
    else:
        host, port = parsed
        mode = (
            tls_mode
            if tls_mode != "auto"
            else ("implicit" if port == IMPLICIT_TLS_PORT else "starttls")
        )
        checker = _Checker(
            report, host, port, user, password, sender, mode, helo_name, lang, timeout
        )
        checker.try_implicit = tls_mode == "auto" and mode == "starttls"
        try:
            await checker.run()
        except _Stop:
            pass
    if not report.set_failed_verdict():
        warning = next((s for s in report.steps if s.status == WARN), None)
        if warning is not None:
            report.verdict = text(lang, "verdict_submission_warn", cause=warning.cause)
        else:
            report.verdict = text(lang, "verdict_submission_ok", user=user, sender=sender)
    return report


class _Checker:
    def __init__(
        self,
        report: Report,
        host: str,
        port: int,
        user: str,
        password: str,
        sender: str,
        mode: str,
        helo_name: str,
        lang: str,
        timeout: float,
        *,
        address: str | None = None,
        recipient: str | None = None,
        strict_context: ssl.SSLContext | None = None,
    ) -> None:
        self.report, self.host, self.port = report, host, port
        self.user, self.password, self.sender = user, password, sender
        self.mode, self.helo_name, self.lang, self.timeout = mode, helo_name, lang, timeout
        self.target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.address = address or host  # what to dial (the relay: an address the queue found)
        self.recipient = recipient or sender  # RCPT TO
        self.strict_context = strict_context  # verify, and stop at a certificate problem
        self.try_implicit = False  # --tls auto off 465: silence → implicit TLS (module docstring)
        self.silent_for = 0.0  # how long the plain-text attempt waited, once it fell back

    def fail(self, name: str, detail: str, key: str, reason: str = "", **facts: object) -> _Stop:
        facts = {
            "target": self.target,
            "host": self.host,
            "timeout": f"{self.timeout:g}",
            "detail": detail,
        } | facts
        self.report.add(
            Step(
                name,
                FAIL,
                detail,
                text(self.lang, key, **facts),
                text(self.lang, key + "_fix", **facts),
                reason,
            )
        )
        return _Stop()

    def fail_reply(self, name: str, reply: proto.ServerReply, phase: str) -> _Stop:
        self.report.add(
            reply_step(
                name,
                self.lang,
                reply.code,
                reply.enhanced,
                reply.text,
                phase,
                recipient=self.sender,
                remote_mta=self.target,
            )
        )
        return _Stop()

    async def run(self) -> None:
        if self.strict_context is not None:
            try:
                session = await self.open(self.strict_context)
            except ssl.SSLCertVerificationError as exc:
                detail = exc.verify_message or str(exc)
                raise self.fail(
                    "certificate",
                    f"{detail} (name checked: {self.host})",
                    "relay_cert_bad",
                    "failedstarttls",
                ) from None
            try:
                await self.login_and_sender(session)
            finally:
                await probe.finish(session)
            return
        # Verify like a mail program; after a certificate problem go on without verifying.
        try:
            session = await self.open(probe.verifying_context())
        except ssl.SSLCertVerificationError as exc:
            detail = exc.verify_message or str(exc)
            self.report.steps.clear()
            session = await self.open(probe.trusting_context())
            warning = Step(
                "certificate",
                WARN,
                f"{detail} (name checked: {self.host})",
                text(self.lang, "cert_bad", detail=detail),
                text(self.lang, "cert_bad_fix", host=self.host),
                "securityerror",
            )
            names = [s.name for s in self.report.steps]
            where = next(
                (i + 1 for i, n in enumerate(names) if n in ("tls", "starttls")), len(names)
            )
            self.report.steps.insert(where, warning)
        try:
            await self.login_and_sender(session)
        finally:
            await probe.finish(session)

    async def open(self, context: ssl.SSLContext) -> SmtpSession:
        """Connect, TLS and EHLO; raises SSLCertVerificationError for the caller to retry."""
        implicit = self.mode == "implicit"
        try:
            session = await probe.dial(
                self.host,
                self.address,
                self.port,
                self.timeout,
                implicit_tls=context if implicit else None,
            )
        except ssl.SSLCertVerificationError:
            raise
        except TimeoutError:
            if self.silent_for:  # the TCP connection worked a moment ago: the TLS hello timed out
                raise self.fail(
                    "greeting",
                    f"no greeting in {self.silent_for:g} s; no TLS answer in {self.timeout:g} s",
                    "sub_silent",
                    "networkerror",
                ) from None
            raise self.fail(
                "connect", f"timed out after {self.timeout:g} s", "sub_timeout", "networkerror"
            ) from None
        except ssl.SSLError as exc:
            if self.silent_for:
                raise self.fail(
                    "greeting",
                    f"no greeting in {self.silent_for:g} s; TLS: {exc.reason or exc}",
                    "sub_silent",
                    "networkerror",
                ) from None
            raise self.fail(
                "tls", exc.reason or str(exc), "sub_not_implicit", "failedstarttls"
            ) from None
        except socket.gaierror as exc:
            raise self.fail(
                "connect", exc.strerror or str(exc), "sub_unresolved", "hostunknown"
            ) from None
        except OSError as exc:
            raise self.fail(
                "connect", exc.strerror or str(exc), "sub_refused", "networkerror"
            ) from None
        if not any(s.name == "connect" for s in self.report.steps):
            self.report.add(Step("connect", OK, self.target))
        try:
            return await self.greet(session, context)
        except ssl.SSLCertVerificationError:
            await probe.abort(session)
            raise
        except _Stop:
            await probe.abort(session)
            raise
        except _TryImplicit:
            await probe.abort(session)
        self.mode, self.try_implicit = "implicit", False
        return await self.open(context)

    async def greet(self, session: SmtpSession, context: ssl.SSLContext) -> SmtpSession:
        if self.mode == "implicit":
            how = "implicit TLS"
            if self.silent_for:
                how += f", tried after no plain-text greeting in {self.silent_for:g} s"
            self.report.add(Step("tls", OK, f"{probe.tls_description(session)} ({how})"))
        wait = min(self.timeout, AUTO_TLS_WAIT) if self.try_implicit else None
        try:
            greeting = await probe.greeting(session, wait)
        except probe.OtherService as other:
            raise self.fail(
                "greeting", other.text, "sub_other_service", "", service=other.service
            ) from None
        except probe.Failed as failed:
            if failed.timed_out and wait is not None:
                self.silent_for = wait
                raise _TryImplicit() from None
            if failed.timed_out and self.mode != "implicit":
                raise self.fail(
                    "greeting", failed.text, "sub_expects_tls", "failedstarttls"
                ) from None
            if failed.timed_out and self.silent_for:
                raise self.fail("greeting", failed.text, "sub_silent", "networkerror") from None
            raise self.fail("greeting", failed.text, "closed", "networkerror") from None
        if greeting.code != 220:
            raise self.fail_reply("greeting", greeting, proto.GREETING)
        self.report.add(Step("greeting", OK, str(greeting)))
        hello = await self.ehlo(session)
        if self.mode != "starttls":
            return session
        if not session.conn.supports("STARTTLS"):
            raise self.fail("starttls", "not offered", "sub_no_starttls", "securityerror")
        reply = await self.command(session, session.conn.starttls(), proto.STARTTLS)
        if reply.code != 220:
            raise self.fail_reply("starttls", reply, proto.STARTTLS)
        try:
            description = await probe.start_tls(session, context, self.host)
        except ssl.SSLCertVerificationError:
            raise
        except (ssl.SSLError, TimeoutError, OSError) as exc:
            raise self.fail(
                "starttls", str(exc) or type(exc).__name__, "tls_failed", "failedstarttls"
            ) from None
        self.report.add(Step("starttls", OK, description))
        del hello
        await self.ehlo(session)  # RFC 3207 §4.2: EHLO again, the extensions may differ
        return session

    async def command(self, session: SmtpSession, data: bytes, phase: str) -> proto.ServerReply:
        try:
            return await probe.command(session, data, phase)
        except probe.Failed as failed:
            session.usable = False
            raise self.fail(
                phase if phase in ("ehlo", "starttls", "mail", "rcpt") else "login",
                failed.text,
                "closed",
                "networkerror",
            ) from None

    async def ehlo(self, session: SmtpSession) -> proto.ServerReply:
        try:
            hello = await probe.ehlo(session, self.helo_name)
        except probe.Failed as failed:
            raise self.fail("ehlo", failed.text, "closed", "networkerror") from None
        if hello.code != 250:
            raise self.fail_reply("ehlo", hello, proto.EHLO)
        self.report.add(Step("ehlo", OK, " ".join(sorted(session.conn.extensions)) or "HELO only"))
        return hello

    async def login_and_sender(self, session: SmtpSession) -> None:
        if self.user:  # a relay without a login (user) goes straight to MAIL FROM
            await self.login(session)
        await self.sender_and_recipient(session)

    async def login(self, session: SmtpSession) -> None:
        conn = session.conn
        mechanisms = conn.extensions.get("AUTH", "").upper().split()
        encrypted = conn.tls_active or self.mode == "implicit"
        if not mechanisms:
            # Try anyway: the server's refusal says whether TLS is what it wants (530/538).
            key = "auth_none" if encrypted else "auth_needs_tls"
            reply = await self.command(session, conn.mail(self.sender), proto.MAIL)
            raise self.fail("auth", f"no AUTH in EHLO; MAIL FROM → {reply}", key, "securityerror")
        self.report.add(Step("auth", OK, " ".join(mechanisms)))
        # 6. login: PLAIN (RFC 4616) when offered, else LOGIN.
        if "PLAIN" in mechanisms:
            token = base64.b64encode(f"\0{self.user}\0{self.password}".encode()).decode()
            reply = await self.auth(session, f"AUTH PLAIN {token}")
        elif "LOGIN" in mechanisms:
            reply = await self.auth(session, "AUTH LOGIN")
            for secret in (self.user, self.password):
                if reply.code != 334:
                    break
                reply = await self.auth(session, base64.b64encode(secret.encode()).decode())
        else:
            raise self.fail(
                "login", f"offered: {' '.join(mechanisms)}", "auth_none", "securityerror"
            )
        if reply.code != 235:
            shown = str(reply)
            if reply.code in (530, 538):
                raise self.fail("login", shown, "auth_needs_tls", "securityerror")
            if reply.code == 535 or reply.enhanced == "5.7.8":
                raise self.fail("login", shown, "login_bad", "securityerror")
            if 400 <= reply.code < 500:
                raise self.fail("login", shown, "login_temporary", "securityerror")
            raise self.fail("login", shown, "login_bad", "securityerror")
        self.report.add(Step("login", OK, f"{self.user}: {reply}"))

    async def sender_and_recipient(self, session: SmtpSession) -> None:
        # 7. Is the From address accepted? MAIL FROM, then RCPT TO the same address (no DATA).
        conn = session.conn
        mail = await self.command(session, conn.mail(self.sender), proto.MAIL)
        if mail.code != 250:
            raise self.fail_reply("mail", mail, proto.MAIL)
        self.report.add(Step("mail", OK, f"<{self.sender}>: {mail}"))
        rcpt = await self.command(session, conn.rcpt(self.recipient), proto.RCPT)
        if rcpt.code not in (250, 251):
            raise self.fail_reply("rcpt", rcpt, proto.RCPT)
        self.report.add(Step("rcpt", OK, f"<{self.recipient}>: {rcpt}"))

    async def auth(self, session: SmtpSession, line: str) -> proto.ServerReply:
        try:
            return await probe.auth(session, line)
        except probe.Failed as failed:
            session.usable = False
            raise self.fail("login", failed.text, "closed", "networkerror") from None
