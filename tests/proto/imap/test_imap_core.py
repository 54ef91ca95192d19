"""The IMAP core without sockets: states, literals, bounds, SASL, IDLE, COMPRESS, commands."""

from __future__ import annotations

import base64
import zlib

import pytest

from todoku.proto.imap import commands as cmds
from todoku.proto.imap.server import (
    LITERAL_LIMIT,
    MAX_ERRORS,
    NEED_DATA,
    PAUSED,
    Closed,
    CommandReceived,
    IdleDone,
    LoginRequest,
    ServerConnection,
    SessionSettings,
    StartTLS,
)


class Driver:
    """Feeds the core and answers as a store would: logins of "joe"/"secret" succeed, SELECT
    succeeds, every other command gets OK."""

    def __init__(self, **settings: object) -> None:
        options: dict[str, object] = {"hostname": "mx.test", "plaintext_login_allowed": True}
        options.update(settings)
        self.conn = ServerConnection(SessionSettings(**options))  # type: ignore[arg-type]
        self.greeting = self.conn.data_to_send()
        self.commands: list[CommandReceived] = []
        self.events: list[object] = []

    def send(self, data: bytes) -> bytes:
        self.conn.receive_data(data)
        while True:
            event = self.conn.next_event()
            if event is NEED_DATA or event is PAUSED:
                break
            self.events.append(event)
            if isinstance(event, LoginRequest):
                if (event.username, event.password) == ("joe", "secret"):
                    self.conn.accept_login(event.username)
                else:
                    self.conn.complete("NO", "Login failed", "AUTHENTICATIONFAILED")
            elif isinstance(event, CommandReceived):
                self.commands.append(event)
                if isinstance(event.command, cmds.Select):
                    self.conn.selected(event.command.read_only)
                if not isinstance(event.command, cmds.Idle):
                    self.conn.complete("OK", "done")
            elif isinstance(event, IdleDone):
                self.conn.complete("OK", "IDLE terminated")
        return self.conn.data_to_send()

    def cmd(self, line: str) -> str:
        return self.send(line.encode() + b"\r\n").decode("utf-8", "replace")

    def logged_in(self) -> Driver:
        assert " OK " in self.cmd("L LOGIN joe secret")
        return self

    def selected(self) -> Driver:
        self.logged_in()
        assert self.cmd("S SELECT INBOX").startswith("S OK")
        return self


def test_greeting_carries_capabilities_and_login_is_disabled_before_tls() -> None:
    d = Driver(plaintext_login_allowed=False, tls_available=True)
    assert d.greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 IMAP4rev2 ")
    assert b"LOGINDISABLED" in d.greeting and b"STARTTLS" in d.greeting
    assert b"AUTH=PLAIN" not in d.greeting
    out = d.cmd("a LOGIN joe secret")
    assert out.startswith("a NO [PRIVACYREQUIRED]")
    assert d.cmd("b AUTHENTICATE PLAIN").startswith("b NO [PRIVACYREQUIRED]")


def test_starttls_pauses_drops_cleartext_pipelined_and_then_offers_login() -> None:
    d = Driver(plaintext_login_allowed=False, tls_available=True)
    out = d.send(b"a STARTTLS\r\nb LOGIN joe secret\r\n")
    assert out == b"a OK Begin TLS negotiation now\r\n"
    assert any(isinstance(e, StartTLS) for e in d.events)
    assert d.conn.next_event() is PAUSED
    d.conn.tls_started()
    caps = d.cmd("c CAPABILITY")
    assert "AUTH=PLAIN" in caps and "STARTTLS" not in caps and "LOGINDISABLED" not in caps
    assert d.cmd("d LOGIN joe secret").startswith("d OK [CAPABILITY ")


def test_capabilities_after_login_name_the_extensions() -> None:
    d = Driver().logged_in()
    caps = d.cmd("c CAPABILITY").split("\r\n")[0].split()
    for name in (
        "IMAP4rev2",
        "IDLE",
        "UIDPLUS",
        "MOVE",
        "CONDSTORE",
        "QRESYNC",
        "ESEARCH",
        "LIST-STATUS",
        "SPECIAL-USE",
        "BINARY",
        "COMPRESS=DEFLATE",
        "QUOTA",
        "APPENDLIMIT=26214400",
    ):
        assert name in caps


def test_login_with_literals_synchronizing_and_not() -> None:
    d = Driver()
    assert d.cmd("a LOGIN {3}") == "+ Ready for literal data\r\n"
    out = d.send(b"joe {6+}\r\nsecret\r\n")
    assert out.startswith(b"a OK [CAPABILITY ")
    login = next(e for e in d.events if isinstance(e, LoginRequest))
    assert (login.username, login.password) == ("joe", "secret")


def test_authenticate_plain_with_initial_response_and_as_a_challenge() -> None:
    token = base64.b64encode(b"\0joe\0secret").decode()
    d = Driver()
    assert d.cmd(f"a AUTHENTICATE PLAIN {token}").startswith("a OK ")
    d = Driver()
    assert d.cmd("a AUTHENTICATE PLAIN") == "+ \r\n"
    assert d.cmd(token).startswith("a OK ")
    d = Driver()
    d.cmd("a AUTHENTICATE PLAIN")
    assert d.cmd("*") == "a BAD Authentication cancelled\r\n"
    assert d.cmd("b NOOP") == "b OK NOOP completed\r\n"


def test_wrong_password_is_no_and_the_session_goes_on() -> None:
    d = Driver()
    assert d.cmd("a LOGIN joe wrong") == "a NO [AUTHENTICATIONFAILED] Login failed\r\n"
    assert d.cmd("b LOGIN joe secret").startswith("b OK")


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        ("a FETCH 1 FLAGS", "a BAD FETCH needs a login first"),
        ("a SELECT", "a BAD SELECT needs a login first"),
        ("a FROB", "a BAD Unknown command FROB"),
        ("", "* BAD Each command starts with a tag (an empty line)"),
    ],
)
def test_commands_in_the_wrong_state_or_unknown_get_bad(line: str, reply: str) -> None:
    assert Driver().cmd(line) == reply + "\r\n"


def test_selected_commands_need_a_selected_mailbox() -> None:
    d = Driver().logged_in()
    assert d.cmd("a FETCH 1 FLAGS").startswith("a BAD FETCH needs a selected mailbox")
    d.cmd("s EXAMINE INBOX")
    assert d.cmd("b FETCH 1 FLAGS") == "b OK done\r\n"


def test_syntax_errors_say_why_and_twenty_close_the_session() -> None:
    d = Driver().selected()
    assert d.cmd("a FETCH 1 (FLAGS") == "a BAD FETCH: unclosed list\r\n"
    assert d.cmd("b FETCH x FLAGS").startswith("b BAD FETCH: sequence set must be")
    assert d.cmd('c SEARCH FROM "unterminated').startswith("c BAD SEARCH: unterminated")
    for i in range(MAX_ERRORS - 4):
        d.cmd(f"x{i} BOGUS")
    out = d.cmd("last BOGUS")
    assert out.endswith("* BYE Too many errors; closing the connection\r\n")
    assert d.conn.closing


def test_a_literal_over_its_limit_is_refused_before_it_is_sent() -> None:
    d = Driver().logged_in()
    out = d.cmd("a APPEND INBOX {1073741824}")
    assert out == "a NO [TOOBIG] The message is too big (at most 26214400 octets)\r\n"
    assert d.cmd("b NOOP") == "b OK done\r\n"
    out = d.cmd(f"c LOGIN {{{LITERAL_LIMIT + 1}}}")
    assert out.startswith("c BAD The literal is too big")


def test_a_nonsynchronizing_literal_over_the_limit_ends_the_session() -> None:
    d = Driver().logged_in()
    out = d.cmd("a APPEND INBOX {999999999+}")
    assert out.startswith("a BAD [TOOBIG]") and "* BYE" in out
    assert d.conn.closing


def test_append_with_flags_date_and_literal() -> None:
    d = Driver().logged_in()
    assert d.cmd('a APPEND Sent (\\Seen) "17-Jul-1996 02:44:25 -0700" {5}').startswith("+ ")
    assert d.cmd("hello") == "a OK done\r\n"
    append = d.commands[-1].command
    assert append == cmds.Append("Sent", ("\\Seen",), 837596665.0, b"hello")


def test_literal_in_the_middle_of_a_command_keeps_the_rest() -> None:
    d = Driver().selected()
    d.send(b'a SEARCH HEADER {7+}\r\nSubject "x y"\r\n')
    search = d.commands[-1].command
    assert isinstance(search, cmds.Search)
    assert search.key.op == "HEADER" and search.key.args == ("Subject", "x y")


def test_idle_sends_a_continuation_and_done_ends_it() -> None:
    d = Driver().selected()
    assert d.cmd("i IDLE") == "+ idling\r\n"
    d.conn.untagged(b"* 3 EXISTS\r\n")
    assert d.conn.data_to_send() == b"* 3 EXISTS\r\n"
    assert d.cmd("DONE") == "i OK IDLE terminated\r\n"


def test_enable_imap4rev2_condstore_qresync() -> None:
    d = Driver().logged_in()
    assert d.cmd("e ENABLE IMAP4rev2 QRESYNC FOO") == (
        "* ENABLED IMAP4rev2 QRESYNC\r\ne OK ENABLE completed\r\n"
    )
    assert d.conn.rev2 and d.conn.qresync and "CONDSTORE" in d.conn.enabled
    assert d.cmd("e2 ENABLE QRESYNC") == "* ENABLED\r\ne2 OK ENABLE completed\r\n"


def test_qresync_select_needs_enable_first() -> None:
    d = Driver().logged_in()
    assert d.cmd("s SELECT INBOX (QRESYNC (1 2))").startswith("s BAD SELECT (QRESYNC")
    d.cmd("e ENABLE QRESYNC")
    assert d.cmd("s SELECT INBOX (QRESYNC (1 2 1:5))") == "s OK done\r\n"
    select = d.commands[-1].command
    assert isinstance(select, cmds.Select) and select.qresync is not None
    assert select.qresync[:2] == (1, 2)


def test_compress_deflate_in_both_directions() -> None:
    d = Driver().logged_in()
    assert d.cmd("z COMPRESS DEFLATE") == "z OK DEFLATE active\r\n"
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    inflate = zlib.decompressobj(-15)
    sent = deflate.compress(b"n NOOP\r\n") + deflate.flush(zlib.Z_SYNC_FLUSH)
    out = d.send(sent)
    assert inflate.decompress(out) == b"n OK done\r\n"
    assert (
        "COMPRESS=DEFLATE"
        not in inflate.decompress(
            d.send(deflate.compress(b"c CAPABILITY\r\n") + deflate.flush(zlib.Z_SYNC_FLUSH))
        ).decode()
    )


def test_logout_says_bye_and_closes() -> None:
    d = Driver().logged_in()
    assert d.cmd("o LOGOUT") == "* BYE Logging out\r\no OK LOGOUT completed\r\n"
    assert any(isinstance(e, Closed) for e in d.events)


def test_id_and_namespace() -> None:
    d = Driver()
    assert d.cmd('i ID ("name" "mutt")').startswith('* ID ("name" "todoku"')
    d.logged_in()
    assert d.cmd("n NAMESPACE") == '* NAMESPACE (("" "/")) NIL NIL\r\nn OK NAMESPACE completed\r\n'


def test_long_line_is_dropped_and_answered_once() -> None:
    d = Driver().logged_in()
    for _ in range(20):
        assert d.send(b"x" * 10_000) == b""
        assert d.conn.buffered <= 70_000
    assert d.send(b"\r\na NOOP\r\n").startswith(b"* BAD Line too long")


def test_fetch_store_copy_search_commands_parse() -> None:
    d = Driver().selected()
    d.cmd("f UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From To)]<0.100>) (CHANGEDSINCE 5)")
    fetch = d.commands[-1].command
    assert isinstance(fetch, cmds.Fetch) and fetch.uid and fetch.changed_since == 5
    names = [i.name for i in fetch.items]
    assert names == ["FLAGS", "BODY[]", "UID", "MODSEQ"]
    assert fetch.items[1].fields == ("From", "To") and fetch.items[1].partial == (0, 100)
    d.cmd("s STORE 1:3 (UNCHANGEDSINCE 7) -FLAGS.SILENT (\\Seen $Junk)")
    store = d.commands[-1].command
    assert store == cmds.Store(
        False, store.sequence, "-", True, ("\\Seen", "$Junk"), 7
    ) and isinstance(store, cmds.Store)
    d.cmd("m UID MOVE 4,6 Trash")
    move = d.commands[-1].command
    assert isinstance(move, cmds.Copy) and move.move and move.mailbox == "Trash"
    d.cmd("x UID EXPUNGE 4:5")
    assert isinstance(d.commands[-1].command, cmds.Expunge)
    out = d.cmd("c SEARCH CHARSET ISO-8859-1 FROM x")
    assert out == "c NO [BADCHARSET (UTF-8)] Only UTF-8 searches are supported\r\n"


def test_mailbox_names_in_modified_utf7_are_decoded() -> None:
    d = Driver().logged_in()
    d.cmd("c CREATE &ZeVnLIqe-")
    create = d.commands[-1].command
    assert create == cmds.Create("日本語")
    d.cmd("c2 CREATE Archive (USE (\\Archive))")
    assert d.commands[-1].command == cmds.Create("Archive", ("\\Archive",))
