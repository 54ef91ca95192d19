#!/usr/bin/env python3
"""todoku against Postfix and Dovecot, on this machine, in the same run (issue 7).

    python bench/run.py            full counts (several minutes)
    python bench/run.py --quick    small counts (a couple of minutes)
    python bench/run.py --only outbound,bounce,memory   some workloads (names in --help)

Workloads: SMTP accept (smtp-1k-20, smtp-4k-20, smtp-4k-1, smtp-100k-20), POP3 retrieval
(pop3) and IMAP (imap: list, bodies, search over one folder) against Postfix and Dovecot; outbound delivery (outbound: a full queue drained to
smtp-sink, against Postfix); bounce analysis (bounce: ``todoku explain`` against Sisimai over
the shared corpus); memory (memory: the server's RSS with an empty and a large deferred queue).

What it does, in order:
1. Makes sure the reference peers run: ``/work/shared/peers/setup-peers.sh`` (override with
   ``TODOKU_PEERS_SCRIPT``) installs Debian's Postfix and Dovecot when ``smtp-source`` is missing and
   starts them on loopback (Postfix 2525, smtp-sink 2526, hold 2527, Dovecot POP3 2110).
2. For every workload and every round, runs the peer and todoku one after the other (the order
   alternates between rounds, so neither always runs on a warmer machine), each time with an empty
   mailbox: todoku gets a fresh data directory and a fresh ``todoku serve`` process on a port-0
   listener; Postfix's Maildir is emptied.
3. Prints a table of medians and todoku/peer ratios and writes ``bench/results/<timestamp>.md``
   with the machine, the versions and every single measurement.
4. Stops everything it started: each todoku process, and the peers if this run started them.

Both servers are durable before they answer 250: Postfix fsyncs its queue file, todoku fsyncs the
file, its directory and the SQLite WAL. Every wait is bounded in time; all traffic is on loopback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
PEERS_SCRIPT = Path(os.environ.get("TODOKU_PEERS_SCRIPT", "/work/shared/peers/setup-peers.sh"))

PF_PORT = int(os.environ.get("PF_PORT", "2525"))
POSTFIX_MAILDIR = (
    Path(os.environ.get("VMAIL_BASE", "/var/spool/bench-vmail")) / "example.test" / "b"
)
POSTFIX_QUEUE = Path("/var/spool/postfix")
# todoku's data lives next to Postfix's queue: the same file system, so the same fsync cost.
TODOKU_BASE = Path(os.environ.get("TODOKU_BENCH_DIR", "/var/spool/bench-todoku"))

# The repository's virtualenv when there is one, so that ``python3 bench/run.py`` works as is.
TODOKU_PYTHON = (
    str(REPO / ".venv" / "bin" / "python")
    if (REPO / ".venv" / "bin" / "python").exists()
    else sys.executable
)
POP3_PORT = int(os.environ.get("POP3_PORT", "2110"))
IMAP_PORT = int(os.environ.get("IMAP_PORT", "2143"))  # a private Dovecot IMAP instance (run_imap)
DOVECOT_MAILDIR = Path(os.environ.get("POP_BASE", "/var/spool/bench-pop")) / "bench" / "Maildir"
DOVECOT_PASSWORD = "bench"  # setup-peers.sh
POP3_PASSWORD = "bench-password"  # todoku wants 8 characters or more
SENDER = "a@example.test"
RECIPIENT = "b@example.test"
START_TIMEOUT = 30.0
CLIENT_TIMEOUT = 600.0  # one smtp-source run, whatever the count
DELIVERY_TIMEOUT = 300.0  # from client end until the last message is in the mailbox
SINK_PORT = int(os.environ.get("SINK_PORT", "2526"))  # smtp-sink (setup-peers.sh)
HOLD_PORT = int(os.environ.get("HOLD_PORT", "2527"))  # Postfix smtpd that holds what it accepts
REMOTE_DOMAIN = "remote.test"  # Postfix's transport map and todoku's loopback DNS: the sink
OUTBOUND_SIZE = 4096
BOUNCE_CORPUS = Path(os.environ.get("TODOKU_BOUNCE_CORPUS", "/work/shared/corpus/bounces"))


# --------------------------------------------------------------------------- small helpers


def find_tool(name: str) -> str | None:
    for directory in (
        "/usr/sbin",
        "/usr/lib/postfix",
        "/usr/lib/postfix/sbin",
        "/usr/libexec/postfix",
    ):
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


def port_open(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def run_text(*argv: str) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (out.stdout or out.stderr).strip() or "?"


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# --------------------------------------------------------------------------- the peers


class Peers:
    """Postfix + smtp-sink + Dovecot through the shared script; stops them if it started them."""

    def __init__(self) -> None:
        self.started = False

    def ensure(self) -> None:
        if not PEERS_SCRIPT.is_file():
            sys.exit(f"bench: {PEERS_SCRIPT} not found (set TODOKU_PEERS_SCRIPT)")
        if find_tool("smtp-source") is None:
            print("bench: installing the peers (postfix, dovecot-pop3d) ...", flush=True)
            self._script("install")
            self._script("configure")
        elif not Path("/etc/dovecot-bench/dovecot.conf").is_file():
            self._script("configure")
        if not port_open(PF_PORT):
            self._script("start")
            self.started = True

    def stop(self) -> None:
        if self.started:
            self._script("stop")
            self.started = False

    @staticmethod
    def _script(action: str) -> None:
        # Output to a file, not a pipe: the daemons it starts inherit it and would hold a pipe open.
        log_path = RESULTS_DIR / "peers.log"
        RESULTS_DIR.mkdir(exist_ok=True)
        with open(log_path, "ab") as log:
            code = subprocess.run(
                ["bash", str(PEERS_SCRIPT), action],
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=900,
                check=False,
            ).returncode
        if code != 0:
            tail = log_path.read_text(errors="replace")[-2000:]
            sys.exit(f"bench: setup-peers.sh {action} failed ({code}):\n{tail}")


# --------------------------------------------------------------------------- todoku


@dataclass
class Todoku:
    """One ``todoku serve`` with a fresh data directory; port 0, read back from listeners.json."""

    root: Path
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    pop3_port: int = 0
    imap_port: int = 0
    peak_rss_kib: int = 0
    cpu_s: float = 0.0  # user + system time of the server process, all threads
    src: str | None = None  # another todoku source tree (``--baseline``), else this one

    def env(self) -> dict[str, str] | None:
        return None if self.src is None else {**os.environ, "PYTHONPATH": self.src}

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def config_path(self) -> Path:
        return self.root / "todoku.toml"

    def _cli(self, *args: str, stdin: str | None = None) -> None:
        result = subprocess.run(
            [TODOKU_PYTHON, "-m", "todoku", *args, "--config", str(self.config_path)],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=self.env(),
        )
        if result.returncode != 0:
            sys.exit(f"bench: todoku {' '.join(args)}: {result.stderr.strip()}")

    def start(
        self, extra_config: str = "", before_serve: Callable[[Todoku], None] | None = None
    ) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            'hostname = "mx.todoku.test"\n'
            'domains = ["example.test"]\n'
            'data_dir = "./data"\n'
            "\n[listen]\n"
            'smtp = "127.0.0.1:0"\n'
            'pop3 = "127.0.0.1:0"\n'
            'imap = "127.0.0.1:0"\n'
            "\n[auth]\nallow_plaintext_on_loopback = true\n" + extra_config
        )
        self._cli("user", "add", RECIPIENT, "--password-stdin", stdin=POP3_PASSWORD + "\n")
        if before_serve is not None:
            before_serve(self)
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            [TODOKU_PYTHON, "-m", "todoku", "serve", "--config", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            env=self.env(),
        )
        log.close()
        listeners = self.data_dir / "run" / "listeners.json"
        if not wait_until(
            lambda: listeners.exists() or self.process.poll() is not None, START_TIMEOUT
        ):
            self.stop()
            sys.exit("bench: todoku serve did not start in time")
        if self.process.poll() is not None:
            sys.exit(
                f"bench: todoku serve exited: {(self.root / 'server.log').read_text()[-2000:]}"
            )
        bound = json.loads(listeners.read_text())
        self.port = int(bound["smtp"][1])
        self.pop3_port = int(bound["pop3"][1])
        self.imap_port = int(bound["imap"][1])

    def queue_count(self) -> int:
        with sqlite3.connect(
            f"file:{self.data_dir / 'todoku.db'}?mode=ro", uri=True, timeout=10
        ) as db:
            return int(db.execute("SELECT count(*) FROM queue").fetchone()[0])

    def read_rss(self) -> int:
        """Resident set now, KiB."""
        if self.process is None:
            return 0
        with suppress(OSError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def mailbox_count(self) -> int:
        with sqlite3.connect(
            f"file:{self.data_dir / 'todoku.db'}?mode=ro", uri=True, timeout=10
        ) as db:
            return int(
                db.execute(
                    "SELECT count(*) FROM messages WHERE mailbox = ?", (RECIPIENT,)
                ).fetchone()[0]
            )

    def read_peak_rss(self) -> int:
        if self.process is None:
            return 0
        with suppress(OSError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_rss_kib = int(line.split()[1])
        return self.peak_rss_kib

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Until the server uses under 5% of a CPU over half a second (bounded)."""
        deadline = time.monotonic() + timeout
        before = self.read_cpu()
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = self.read_cpu()
            if now - before < 0.025:
                return
            before = now

    def read_cpu(self) -> float:
        if self.process is None:
            return 0.0
        with suppress(OSError):
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks = os.sysconf("SC_CLK_TCK")
            self.cpu_s = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        return self.cpu_s

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None


@contextmanager
def todoku_instance(
    base: Path,
    extra_config: str = "",
    before_serve: Callable[[Todoku], None] | None = None,
    src: str | None = None,
) -> Iterator[Todoku]:
    root = Path(tempfile.mkdtemp(prefix="run-", dir=base))
    server = Todoku(root, src=src)
    try:
        server.start(extra_config, before_serve)
        yield server
    finally:
        server.read_peak_rss()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------- workloads


@dataclass(frozen=True)
class SmtpWorkload:
    name: str
    sessions: int
    messages: int
    size: int  # bytes, smtp-source -l

    def label(self) -> str:
        size = f"{self.size // 1024} KiB"
        return f"SMTP accept {self.messages}x{size}, {self.sessions} session{'s' if self.sessions > 1 else ''}"


@dataclass
class Sample:
    client_s: float
    delivered_s: float
    peak_rss_kib: int = 0
    cpu_s: float = 0.0  # todoku only: server CPU seconds during the run


@dataclass
class Result:
    label: str
    peer: str
    messages: int
    todoku: list[Sample] = field(default_factory=list)
    other: list[Sample] = field(default_factory=list)


def smtp_source(workload: SmtpWorkload, port: int, recipient: str = RECIPIENT) -> float:
    tool = find_tool("smtp-source")
    assert tool is not None
    argv = [
        tool,
        "-s", str(workload.sessions),
        "-m", str(workload.messages),
        "-l", str(workload.size),
        "-f", SENDER,
        "-t", recipient,
        f"127.0.0.1:{port}",
    ]  # fmt: skip
    started = time.monotonic()
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=CLIENT_TIMEOUT, check=False
    )
    elapsed = time.monotonic() - started
    if result.returncode != 0 or result.stderr.strip():
        raise RuntimeError(f"smtp-source against port {port} failed: {result.stderr.strip()[:500]}")
    return elapsed


def postfix_queue_files(subdirs: tuple[str, ...] = ("incoming", "active", "deferred")) -> int:
    count = 0
    for sub in subdirs:
        with suppress(OSError):
            for _, _, files in os.walk(POSTFIX_QUEUE / sub):
                count += len(files)
    return count


def empty_postfix_mailbox() -> None:
    if not wait_until(lambda: postfix_queue_files() == 0, DELIVERY_TIMEOUT, 0.2):
        raise RuntimeError("Postfix's queue did not drain before the round")
    for sub in ("new", "cur", "tmp"):
        directory = POSTFIX_MAILDIR / sub
        if directory.is_dir():
            for entry in os.scandir(directory):
                with suppress(OSError):
                    os.unlink(entry.path)


def postfix_mailbox_count() -> int:
    with suppress(OSError):
        return len(os.listdir(POSTFIX_MAILDIR / "new"))
    return 0


def run_postfix_smtp(workload: SmtpWorkload) -> Sample:
    empty_postfix_mailbox()
    subprocess.run(["sync"], check=False, timeout=120)
    started = time.monotonic()
    client = smtp_source(workload, PF_PORT)
    if not wait_until(lambda: postfix_mailbox_count() >= workload.messages, DELIVERY_TIMEOUT, 0.01):
        raise RuntimeError(f"Postfix delivered only {postfix_mailbox_count()}/{workload.messages}")
    return Sample(client, time.monotonic() - started)


def run_todoku_smtp(workload: SmtpWorkload, src: str | None = None) -> Sample:
    with todoku_instance(TODOKU_BASE, src=src) as server:
        subprocess.run(["sync"], check=False, timeout=120)
        cpu_before = server.read_cpu()
        started = time.monotonic()
        client = smtp_source(workload, server.port)
        if not wait_until(
            lambda: server.mailbox_count() >= workload.messages, DELIVERY_TIMEOUT, 0.01
        ):
            raise RuntimeError(f"todoku stored only {server.mailbox_count()}/{workload.messages}")
        delivered = time.monotonic() - started
        count = server.mailbox_count()
        if count != workload.messages:
            raise RuntimeError(f"todoku stored {count} messages, expected {workload.messages}")
        rss = server.read_peak_rss()
        cpu = server.read_cpu() - cpu_before
    return Sample(client, delivered, rss, cpu)


def smtp_workloads(quick: bool) -> list[SmtpWorkload]:
    if quick:
        return [
            SmtpWorkload("smtp-1k-20", 20, 500, 1024),
            SmtpWorkload("smtp-4k-20", 20, 500, 4096),
            SmtpWorkload("smtp-1k-1", 1, 200, 1024),
            SmtpWorkload("smtp-4k-1", 1, 200, 4096),
            SmtpWorkload("smtp-100k-20", 20, 200, 100 * 1024),
        ]
    return [
        SmtpWorkload("smtp-1k-20", 20, 5000, 1024),
        SmtpWorkload("smtp-4k-20", 20, 5000, 4096),
        SmtpWorkload("smtp-1k-1", 1, 1000, 1024),
        SmtpWorkload("smtp-4k-1", 1, 1000, 4096),
        SmtpWorkload("smtp-100k-20", 20, 2000, 100 * 1024),
    ]


def pop3_fetch_all(port: int, user: str, password: str, expected: int) -> float:
    """Log in, UIDL, RETR every message, QUIT (no DELE: the mailbox stays for the next round)."""
    import poplib

    started = time.monotonic()
    client = poplib.POP3("127.0.0.1", port, timeout=60)
    try:
        client.user(user)
        client.pass_(password)
        _, listing, _ = client.uidl()
        if len(listing) != expected:
            raise RuntimeError(f"POP3 on port {port}: {len(listing)} messages, expected {expected}")
        size = 0
        for entry in listing:
            number = entry.split()[0].decode()
            _, _, octets = client.retr(number)
            size += octets
        client.quit()
    finally:
        with suppress(OSError):
            client.close()
    if size < expected * 1000:
        raise RuntimeError(f"POP3 on port {port}: only {size} bytes for {expected} messages")
    return time.monotonic() - started


def fill_dovecot(messages: int, size: int) -> None:
    """Maildir files written directly (Dovecot indexes them at the first login, outside the timing)."""
    import pwd

    owner = pwd.getpwnam(os.environ.get("VMAIL_USER", "benchvmail"))
    if DOVECOT_MAILDIR.parent.exists():
        shutil.rmtree(DOVECOT_MAILDIR.parent)
    for sub in ("new", "cur", "tmp"):
        (DOVECOT_MAILDIR / sub).mkdir(parents=True)
    body = (b"x" * 76 + b"\r\n") * (size // 78)
    for number in range(messages):
        content = (
            f"From: a@example.test\r\nTo: bench@example.test\r\nSubject: bench {number}\r\n"
            f"Message-ID: <{number}@bench.test>\r\n\r\n"
        ).encode() + body
        (DOVECOT_MAILDIR / "new" / f"{1700000000 + number}.M{number}P1.bench").write_bytes(
            content.replace(b"\r\n", b"\n")
        )
    for root, dirs, files in os.walk(DOVECOT_MAILDIR.parent):
        for name in dirs + files:
            os.chown(os.path.join(root, name), owner.pw_uid, owner.pw_gid)
    os.chown(DOVECOT_MAILDIR.parent, owner.pw_uid, owner.pw_gid)


def run_pop3(messages: int, size: int, rounds: int, result: Result) -> None:
    """One filled mailbox per server; then alternate the timed fetches. The first fetch of each
    (indexing, cold caches) is not counted."""
    fill_dovecot(messages, size)
    pop3_fetch_all(
        POP3_PORT, "bench", DOVECOT_PASSWORD, messages
    )  # warm-up: Dovecot builds its index
    with todoku_instance(TODOKU_BASE) as server:
        smtp_source(SmtpWorkload("fill", 20, messages, size), server.port)
        if not wait_until(lambda: server.mailbox_count() >= messages, DELIVERY_TIMEOUT):
            raise RuntimeError("todoku: the POP3 mailbox did not fill")
        pop3_fetch_all(server.pop3_port, RECIPIENT, POP3_PASSWORD, messages)  # warm-up
        for round_number in range(rounds):
            order = ("todoku", "peer") if round_number % 2 == 0 else ("peer", "todoku")
            for who in order:
                if who == "todoku":
                    cpu_before = server.read_cpu()
                    elapsed = pop3_fetch_all(server.pop3_port, RECIPIENT, POP3_PASSWORD, messages)
                    sample = Sample(
                        elapsed, elapsed, server.read_peak_rss(), server.read_cpu() - cpu_before
                    )
                    result.todoku.append(sample)
                else:
                    elapsed = pop3_fetch_all(POP3_PORT, "bench", DOVECOT_PASSWORD, messages)
                    sample = Sample(elapsed, elapsed)
                    result.other.append(sample)
                print(f"pop3 round {round_number + 1} {who}: {elapsed:.2f}s", flush=True)


# --------------------------------------------------------------------------- IMAP


IMAP_WORKLOADS = (
    ("list", "login + SELECT + FETCH 1:* (FLAGS ENVELOPE)"),
    ("bodies", "login + SELECT + UID FETCH 1:* BODY.PEEK[]"),
    ("search", "login + SELECT + SEARCH BODY (a word in no message)"),
)


@contextmanager
def dovecot_imap() -> Iterator[None]:
    """Dovecot's IMAP over the POP3 workload's Maildir: a private instance (own config, base_dir
    and port) started here, because setup-peers.sh runs Dovecot for POP3 only."""
    import pwd

    if not Path("/usr/lib/dovecot/imap").exists():
        print("bench: installing dovecot-imapd ...", flush=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "dovecot-imapd"],
            capture_output=True,
            timeout=600,
            check=True,
        )
    owner = pwd.getpwnam(os.environ.get("VMAIL_USER", "benchvmail"))
    root = Path(tempfile.mkdtemp(prefix="dovecot-imap-"))
    conf = root / "dovecot.conf"
    conf.write_text(
        "protocols = imap\nlisten = 127.0.0.1\n"
        f"base_dir = {root}/run\ninstance_name = dovecot-bench-imap\n"
        f"log_path = {root}/dovecot.log\nssl = no\ndisable_plaintext_auth = no\n"
        "auth_mechanisms = plain\nfirst_valid_uid = 100\nmail_location = maildir:~/Maildir\n"
        "passdb {\n  driver = static\n  args = password=" + DOVECOT_PASSWORD + "\n}\n"
        "userdb {\n  driver = static\n"
        f"  args = uid={owner.pw_uid} gid={owner.pw_gid} home={DOVECOT_MAILDIR.parent.parent}/%u\n"
        "}\n"
        f"service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n"
        f"    port = {IMAP_PORT}\n  }}\n}}\n"
    )
    subprocess.run(["dovecot", "-c", str(conf)], check=True, timeout=60)
    try:
        if not wait_until(lambda: port_open(IMAP_PORT), 10):
            sys.exit(f"bench: Dovecot IMAP did not open {IMAP_PORT}: see {root}/dovecot.log")
        yield
    finally:
        subprocess.run(["doveadm", "-c", str(conf), "stop"], timeout=60, check=False)
        shutil.rmtree(root, ignore_errors=True)


def imap_run(workload: str, port: int, user: str, password: str, expected: int) -> float:
    """One timed IMAP session (imaplib): login, SELECT INBOX, the workload, LOGOUT."""
    import imaplib

    started = time.monotonic()
    client = imaplib.IMAP4("127.0.0.1", port, timeout=CLIENT_TIMEOUT)
    try:
        client.login(user, password)
        typ, data = client.select("INBOX", readonly=True)
        if typ != "OK" or int(data[0] or 0) != expected:
            raise RuntimeError(f"IMAP on port {port}: SELECT {typ} {data}, expected {expected}")
        if workload == "list":
            typ, data = client.fetch("1:*", "(FLAGS ENVELOPE)")
            count = len(data)
        elif workload == "bodies":
            typ, data = client.uid("FETCH", "1:*", "(BODY.PEEK[])")
            count = sum(1 for d in data if isinstance(d, tuple))
        else:
            typ, data = client.search(None, "BODY", "pomegranate")
            count = expected if data == [b""] else -1
        if typ != "OK" or count != expected:
            raise RuntimeError(f"IMAP {workload} on port {port}: {typ}, {count}/{expected}")
        client.logout()
    finally:
        with suppress(OSError):
            client.shutdown()
    return time.monotonic() - started


def idle_wakeup(port: int, user: str, password: str, deliver: Callable[[], None]) -> float:
    """Seconds from the start of a delivery until an IDLE session hears EXISTS (the delivery's
    own time included)."""
    import imaplib

    client = imaplib.IMAP4("127.0.0.1", port, timeout=60)
    try:
        client.login(user, password)
        client.select("INBOX")
        client.send(b"I1 IDLE\r\n")
        if not client.readline().startswith(b"+"):
            raise RuntimeError(f"IMAP on port {port}: IDLE refused")
        started = time.monotonic()
        deliver()
        while not client.readline().rstrip().endswith(b"EXISTS"):
            pass
        elapsed = time.monotonic() - started
        client.send(b"DONE\r\n")
        while not client.readline().startswith(b"I1 "):
            pass  # untagged responses that came with the delivery (RECENT, FETCH)
        client.logout()
    finally:
        with suppress(OSError):
            client.shutdown()
    return elapsed


def deliver_smtp(port: int) -> None:
    import smtplib

    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.sendmail(SENDER, [RECIPIENT], b"Subject: idle\r\n\r\nwake up\r\n")


def deliver_maildir() -> None:
    """What an LDA does: write in tmp/, rename into new/ (Dovecot sees it through inotify)."""
    import pwd

    owner = pwd.getpwnam(os.environ.get("VMAIL_USER", "benchvmail"))
    name = f"{time.time_ns()}.idle.bench"
    temp = DOVECOT_MAILDIR / "tmp" / name
    temp.write_bytes(b"Subject: idle\n\nwake up\n")
    os.chown(temp, owner.pw_uid, owner.pw_gid)
    os.rename(temp, DOVECOT_MAILDIR / "new" / name)


def run_imap(messages: int, size: int, rounds: int, results: dict[str, Result]) -> None:
    """One filled folder per server (the POP3 workload's messages); the first run of each workload
    (Dovecot building its index and cache, todoku reading and parsing every message once) is not
    counted; then alternate the timed runs."""
    fill_dovecot(messages, size)
    with dovecot_imap(), todoku_instance(TODOKU_BASE) as server:
        smtp_source(SmtpWorkload("fill", 20, messages, size), server.port)
        if not wait_until(lambda: server.mailbox_count() >= messages, DELIVERY_TIMEOUT):
            raise RuntimeError("todoku: the IMAP folder did not fill")
        targets = {
            "todoku": (server.imap_port, RECIPIENT, POP3_PASSWORD),
            "peer": (IMAP_PORT, "bench", DOVECOT_PASSWORD),
        }
        for name, _ in IMAP_WORKLOADS:
            for port, user, password in targets.values():
                imap_run(name, port, user, password, messages)  # warm-up
            result = results[name]
            for round_number in range(rounds):
                order = ("todoku", "peer") if round_number % 2 == 0 else ("peer", "todoku")
                for who in order:
                    cpu_before = server.read_cpu()
                    elapsed = imap_run(name, *targets[who], messages)
                    if who == "todoku":
                        cpu = server.read_cpu() - cpu_before
                        result.todoku.append(Sample(elapsed, elapsed, server.read_peak_rss(), cpu))
                    else:
                        result.other.append(Sample(elapsed, elapsed))
                    print(f"imap-{name} round {round_number + 1} {who}: {elapsed:.2f}s", flush=True)
        idle = results["idle"]
        for round_number in range(rounds * 3):
            mine = idle_wakeup(
                server.imap_port, RECIPIENT, POP3_PASSWORD, lambda: deliver_smtp(server.port)
            )
            peer = idle_wakeup(IMAP_PORT, "bench", DOVECOT_PASSWORD, deliver_maildir)
            idle.todoku.append(Sample(mine, mine))
            idle.other.append(Sample(peer, peer))
            print(f"imap-idle {round_number + 1}: todoku {mine:.3f}s, Dovecot {peer:.3f}s")


# --------------------------------------------------------------------------- workload 2: outbound


@contextmanager
def loopback_dns(*records: str) -> Iterator[str]:
    """bench/loopback_dns.py (tests/dnsserver.py) as a child; yields "127.0.0.1:PORT"."""
    import select

    process = subprocess.Popen(
        [TODOKU_PYTHON, str(BENCH_DIR / "loopback_dns.py"), *records],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=REPO,
    )
    try:
        assert process.stdout is not None and process.stdin is not None
        ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT)
        address = process.stdout.readline().decode().strip() if ready else ""
        if not address:
            raise RuntimeError("bench: the loopback DNS server did not start")
        yield address
    finally:
        with suppress(OSError):
            assert process.stdin is not None
            process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def fill_todoku_queue(server: Todoku, count: int, defer: float) -> None:
    """COUNT messages to REMOTE_DOMAIN in a stopped server's queue, due in DEFER seconds."""
    subprocess.run(
        [
            TODOKU_PYTHON,
            str(BENCH_DIR / "queue_fill.py"),
            str(server.data_dir),
            str(count),
            str(OUTBOUND_SIZE),
            REMOTE_DOMAIN,
            "--sender",
            RECIPIENT,
            "--defer",
            str(defer),
        ],
        check=True,
        timeout=CLIENT_TIMEOUT * 2,
        cwd=REPO,
    )


def outbound_config(dns_address: str) -> str:
    # A single long retry: a message the sink refused would stay queued, and the run would fail.
    return (
        f'\n[dns]\nnameservers = ["{dns_address}"]\n'
        f'\n[delivery]\nport = {SINK_PORT}\nretry = ["1h"]\n'
    )


def run_todoku_outbound(count: int, dns_address: str) -> Sample:
    """The queue filled while the server is down (deferred an hour); then ``todoku queue flush``
    and the time until the queue is empty. The bounces would go to RECIPIENT's mailbox: it must
    stay empty."""
    with todoku_instance(
        TODOKU_BASE, outbound_config(dns_address), lambda s: fill_todoku_queue(s, count, 3600.0)
    ) as server:
        if server.queue_count() != count:
            raise RuntimeError(f"todoku: {server.queue_count()} queued, expected {count}")
        subprocess.run(["sync"], check=False, timeout=120)
        server.wait_idle()  # start-up done (keys, certificate, queue scan), like a running Postfix
        cpu_before = server.read_cpu()
        started = time.monotonic()
        server._cli("queue", "flush")
        if not wait_until(lambda: server.queue_count() == 0, DELIVERY_TIMEOUT, 0.01):
            raise RuntimeError(f"todoku: {server.queue_count()}/{count} still queued")
        elapsed = time.monotonic() - started
        cpu = server.read_cpu() - cpu_before
        if server.mailbox_count():
            raise RuntimeError(f"todoku: {server.mailbox_count()} bounces; the sink refused mail")
        return Sample(elapsed, elapsed, server.read_peak_rss(), cpu)


def run_postfix_outbound(count: int) -> Sample:
    """Postfix's hold port (setup-peers.sh) fills the hold queue; then ``postsuper -H ALL`` and
    ``postqueue -f`` and the time until the queue is empty (remote.test goes to smtp-sink).
    The Maildir is left alone (other runs may be using it); bounces are found by their sender."""
    if not wait_until(lambda: postfix_queue_files() == 0, DELIVERY_TIMEOUT, 0.2):
        raise RuntimeError("Postfix's queue did not drain before the round")
    since = time.time()
    if postfix_queue_files(("hold",)):
        run_text("postsuper", "-d", "ALL", "hold")
    smtp_source(SmtpWorkload("fill", 20, count, OUTBOUND_SIZE), HOLD_PORT, f"rcpt@{REMOTE_DOMAIN}")
    if not wait_until(lambda: postfix_queue_files(("hold",)) >= count, DELIVERY_TIMEOUT, 0.05):
        raise RuntimeError(f"Postfix held only {postfix_queue_files(('hold',))}/{count}")
    subprocess.run(["sync"], check=False, timeout=120)
    everything = ("maildrop", "incoming", "active", "deferred", "hold")
    started = time.monotonic()
    subprocess.run(["postsuper", "-H", "ALL"], check=True, capture_output=True, timeout=120)
    subprocess.run(["postqueue", "-f"], check=True, capture_output=True, timeout=120)
    if not wait_until(lambda: postfix_queue_files(everything) == 0, DELIVERY_TIMEOUT, 0.01):
        raise RuntimeError(f"Postfix: {postfix_queue_files(everything)}/{count} still queued")
    elapsed = time.monotonic() - started
    if postfix_bounces(since):
        raise RuntimeError(f"Postfix: {postfix_bounces(since)} bounces; the sink refused mail")
    return Sample(elapsed, elapsed)


def postfix_bounces(since: float) -> int:
    count = 0
    with suppress(OSError):
        for entry in os.scandir(POSTFIX_MAILDIR / "new"):
            with suppress(OSError):
                if entry.stat().st_mtime >= since:
                    with open(entry.path, "rb") as handle:
                        count += b"MAILER-DAEMON" in handle.read(4096)
    return count


def run_outbound(count: int, rounds: int, result: Result) -> None:
    with loopback_dns(
        REMOTE_DOMAIN, "MX", f"10 mx.{REMOTE_DOMAIN}.", f"mx.{REMOTE_DOMAIN}", "A", "127.0.0.1"
    ) as dns_address:
        for round_number in range(rounds):
            order = ("todoku", "peer") if round_number % 2 == 0 else ("peer", "todoku")
            for who in order:
                if who == "todoku":
                    sample = run_todoku_outbound(count, dns_address)
                    result.todoku.append(sample)
                else:
                    sample = run_postfix_outbound(count)
                    result.other.append(sample)
                print(
                    f"outbound round {round_number + 1} {who}: queue empty after {sample.delivered_s:.2f}s"
                    + (f", server CPU {sample.cpu_s:.2f}s" if who == "todoku" else ""),
                    flush=True,
                )


# --------------------------------------------------------------------------- workload 4: bounces


def run_bounce(rounds: int, result: Result) -> int:
    """Whole runs over the corpus as one Maildir folder: ``todoku explain --json`` against
    Debian's Sisimai (``Sisimai->make``, bench/explain_accuracy.py's script). Wall time per run;
    the CPU column is the child's user+system time. Returns the number of messages."""
    import resource

    # The same Sisimai program as bench/explain_accuracy.py (which imports todoku: read it there).
    SISIMAI_SCRIPT = subprocess.run(
        [
            TODOKU_PYTHON,
            "-c",
            "import explain_accuracy, sys; sys.stdout.write(explain_accuracy.SISIMAI_SCRIPT)",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=BENCH_DIR,
    ).stdout

    files = sorted(p for p in (BOUNCE_CORPUS / "maildir").rglob("*") if p.is_file())
    if not files:
        raise RuntimeError(f"no bounce corpus under {BOUNCE_CORPUS}")
    if subprocess.run(
        ["perl", "-MSisimai", "-e", "1"], capture_output=True, check=False
    ).returncode:
        raise RuntimeError("Sisimai is missing: apt-get install -y libsisimai-perl")
    with tempfile.TemporaryDirectory(dir=TODOKU_BASE) as tmp:
        folder = Path(tmp) / "cur"
        folder.mkdir()
        for number, path in enumerate(files):
            shutil.copyfile(path, folder / f"{number}.eml")
        commands = {
            "todoku": [TODOKU_PYTHON, "-m", "todoku", "explain", "--json", str(folder)],
            "peer": ["perl", "-e", SISIMAI_SCRIPT, str(folder)],
        }
        for round_number in range(rounds):
            order = ("todoku", "peer") if round_number % 2 == 0 else ("peer", "todoku")
            for who in order:
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                started = time.monotonic()
                subprocess.run(
                    commands[who], capture_output=True, check=True, timeout=CLIENT_TIMEOUT, cwd=REPO
                )
                elapsed = time.monotonic() - started
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
                (result.todoku if who == "todoku" else result.other).append(
                    Sample(elapsed, elapsed, 0, cpu)
                )
                print(
                    f"bounce round {round_number + 1} {who}: {len(files)} messages in {elapsed:.2f}s"
                    f" (CPU {cpu:.2f}s)",
                    flush=True,
                )
    return len(files)


# --------------------------------------------------------------------------- workload 5: memory


@dataclass(frozen=True)
class MemoryPoint:
    queued: int
    rss_kib: int
    fill_s: float


def settled_rss(server: Todoku, timeout: float = 120.0) -> int:
    """The server's RSS once it stops growing (start-up and the queue scan done): two reads a
    second apart within 1%, bounded by ``timeout``."""
    deadline = time.monotonic() + timeout
    previous = server.read_rss()
    while time.monotonic() < deadline:
        time.sleep(1.0)
        current = server.read_rss()
        if abs(current - previous) <= previous / 100:
            return current
        previous = current
    return server.read_rss()


def run_memory(sizes: list[int], dns_address: str) -> list[MemoryPoint]:
    """A fresh server over a queue of each size, every message deferred an hour (indexed by the
    runner, not tried); RSS after start-up."""
    points = []
    for count in sizes:
        fill_s = 0.0

        def fill(server: Todoku, count: int = count) -> None:
            nonlocal fill_s
            started = time.monotonic()
            if count:
                fill_todoku_queue(server, count, 3600.0)
            fill_s = time.monotonic() - started

        with todoku_instance(TODOKU_BASE, outbound_config(dns_address), fill) as server:
            rss = settled_rss(server)
            if server.queue_count() != count:
                raise RuntimeError(f"todoku: {server.queue_count()} queued, expected {count}")
        points.append(MemoryPoint(count, rss, fill_s))
        print(
            f"memory: {count} queued (filled in {fill_s:.0f}s): RSS {rss / 1024:.1f} MiB",
            flush=True,
        )
    return points


def memory_lines(points: list[MemoryPoint], outbound: Result | None) -> list[str]:
    if not points:
        return []
    base = points[0]
    lines = [
        "| messages in the queue (deferred) | todoku serve RSS | bytes per queued message (vs empty) |",
        "|---:|---:|---:|",
    ]
    for point in points:
        per = f"{(point.rss_kib - base.rss_kib) * 1024 / point.queued:.0f}" if point.queued else "-"
        lines.append(f"| {point.queued:,} | {point.rss_kib / 1024:.1f} MiB | {per} |")
    if outbound is not None and outbound.todoku:
        peak = max(s.peak_rss_kib for s in outbound.todoku)
        lines.append(f"| peak while draining {outbound.messages:,} | {peak / 1024:.1f} MiB | - |")
    return lines


# --------------------------------------------------------------------------- report


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine_facts() -> dict[str, str]:
    cpu = "?"
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with suppress(OSError):
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split(":", 1)[1].strip()
    fs = run_text("findmnt", "-no", "FSTYPE,SOURCE", "--target", str(TODOKU_BASE))
    return {
        "host": platform.node(),
        "kernel": platform.release(),
        "cpu": f"{cpu} x {os.cpu_count()}",
        "memory": mem,
        "load average at the start (other work on this machine)": " ".join(
            Path("/proc/loadavg").read_text().split()[:3]
        ),
        "file system (todoku data, Postfix queue)": fs,
        "python": platform.python_version(),
        "todoku": run_text("git", "-C", str(REPO), "describe", "--always", "--dirty"),
        "postfix": run_text("postconf", "-h", "mail_version"),
        "dovecot": run_text("dovecot", "--version"),
    }


def _describe(src: str) -> str:
    return run_text("git", "-C", src, "describe", "--always", "--dirty")


def table(results: list[Result]) -> list[str]:
    lines = [
        (
            "| workload | peer | todoku client s | peer client s | todoku msg/s | peer msg/s | ratio (client) |"
            " ratio (in mailbox) | todoku peak RSS | todoku CPU ms/msg |"
        ),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        t_client = median([s.client_s for s in r.todoku])
        p_client = median([s.client_s for s in r.other])
        t_done = median([s.delivered_s for s in r.todoku])
        p_done = median([s.delivered_s for s in r.other])
        rss = max((s.peak_rss_kib for s in r.todoku), default=0)
        lines.append(
            f"| {r.label} | {r.peer} | {t_client:.2f} | {p_client:.2f} | {r.messages / t_done:.0f} |"
            f" {r.messages / p_done:.0f} | {p_client / t_client:.2f}x | {p_done / t_done:.2f}x |"
            f" {f'{rss / 1024:.0f} MiB' if rss else '-'} | {1000 * median([s.cpu_s for s in r.todoku]) / r.messages:.2f} |"
        )
    return lines


def write_report(
    results: list[Result],
    facts: dict[str, str],
    args: argparse.Namespace,
    started: str,
    memory: list[str] | None = None,
) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{started}.md"
    out = [f"# todoku benchmark, {started} UTC{' (--quick)' if args.quick else ''}", ""]
    out += [f"- {key}: {value}" for key, value in facts.items()]
    out += [f"- rounds per workload: {args.rounds} (medians below; order alternates per round)", ""]
    out += [
        (
            "msg/s = messages / time until the last message is in the mailbox; ratio = peer time / todoku"
            " time (above 1 means todoku is faster)."
        ),
        "",
    ]
    out += table(results)
    if memory:
        out += ["", "## Memory of todoku serve (workload 5)", "", *memory]
    out += ["", "## Every measurement (seconds: client finished / last message in the mailbox)", ""]
    for r in results:
        out.append(f"- {r.label}")
        out.append(
            "  - todoku: " + ", ".join(f"{s.client_s:.2f}/{s.delivered_s:.2f}" for s in r.todoku)
        )
        out.append(
            f"  - {r.peer}: " + ", ".join(f"{s.client_s:.2f}/{s.delivered_s:.2f}" for s in r.other)
        )
    path.write_text("\n".join(out) + "\n")
    return path


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts; a couple of minutes")
    parser.add_argument(
        "--rounds", type=int, default=None, help="rounds per workload (default 3, quick 2)"
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated workload names: smtp-1k-20, smtp-4k-20, smtp-1k-1, smtp-4k-1,"
        " smtp-100k-20, pop3,"
        " imap, outbound, bounce, memory",
    )
    parser.add_argument(
        "--keep-peers", action="store_true", help="leave the peers running afterwards"
    )
    parser.add_argument(
        "--baseline",
        default=None,
        metavar="SRC",
        help="also run the SMTP workloads with the todoku in SRC (a src/ directory, e.g. of a"
        " worktree at an older commit) in the same rounds: a before/after ratio on one load",
    )
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (2 if args.quick else 3)
    if os.geteuid() != 0:
        sys.exit("bench: run as root (the peers are system services)")
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%M%S")
    TODOKU_BASE.mkdir(parents=True, exist_ok=True)
    facts = machine_facts()
    peers = Peers()
    results: list[Result] = []
    memory: list[str] = []
    try:
        peers.ensure()
        wanted = {name for name in args.only.split(",") if name}
        for workload in smtp_workloads(args.quick):
            if wanted and workload.name not in wanted:
                continue
            result = Result(workload.label(), "Postfix", workload.messages)
            # The baseline's row shares the same Postfix samples: ratios on the same load.
            before = Result(f"{workload.label()} [baseline]", "Postfix", workload.messages)
            runners = ["todoku", "peer"] + (["baseline"] if args.baseline else [])
            for round_number in range(args.rounds):
                shift = round_number % len(runners)  # each goes first in turn
                for who in runners[shift:] + runners[:shift]:
                    if who == "todoku":
                        sample = run_todoku_smtp(workload)
                        result.todoku.append(sample)
                    elif who == "baseline":
                        sample = run_todoku_smtp(workload, args.baseline)
                        before.todoku.append(sample)
                    else:
                        sample = run_postfix_smtp(workload)
                        result.other.append(sample)
                        before.other.append(sample)
                    print(
                        f"{workload.name} round {round_number + 1} {who}: client {sample.client_s:.2f}s,"
                        f" in mailbox {sample.delivered_s:.2f}s"
                        + (f", server CPU {sample.cpu_s:.2f}s" if who != "peer" else ""),
                        flush=True,
                    )
            results.append(result)
            if args.baseline:
                results.append(before)
        if not wanted or "pop3" in wanted:
            count = 300 if args.quick else 5000
            result = Result(f"POP3 UIDL+RETR {count}x4 KiB (poplib client)", "Dovecot", count)
            run_pop3(count, 4096, args.rounds, result)
            results.append(result)
        if not wanted or "imap" in wanted:
            count = 300 if args.quick else 5000
            imap_results = {
                name: Result(f"IMAP {label}, {count}x4 KiB (imaplib)", "Dovecot", count)
                for name, label in IMAP_WORKLOADS
            }
            imap_results["idle"] = Result(
                "IMAP IDLE wake-up, one message (todoku: SMTP delivery included;"
                " Dovecot: a file renamed into new/)",
                "Dovecot",
                1,
            )
            run_imap(count, 4096, args.rounds, imap_results)
            results += imap_results.values()
        outbound: Result | None = None
        if not wanted or "outbound" in wanted:
            count = 500 if args.quick else 5000
            outbound = Result(
                f"Outbound {count}x4 KiB queue to smtp-sink (until empty)", "Postfix", count
            )
            run_outbound(count, args.rounds, outbound)
            results.append(outbound)
        if not wanted or "bounce" in wanted:
            result = Result("Bounce analysis, whole run over the corpus", "Sisimai", 0)
            result.messages = run_bounce(args.rounds, result)
            result.label = f"Bounce analysis, {result.messages} messages (whole run)"
            results.append(result)
        if not wanted or "memory" in wanted:
            sizes = [0, 5_000, 20_000] if args.quick else [0, 50_000, 200_000]
            with loopback_dns(REMOTE_DOMAIN, "MX", f"10 mx.{REMOTE_DOMAIN}.") as dns_address:
                memory = memory_lines(run_memory(sizes, dns_address), outbound)
    finally:
        if not args.keep_peers:
            peers.stop()
    facts["load average at the end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    if args.baseline:
        facts["baseline (rows marked [baseline])"] = f"{args.baseline} ({_describe(args.baseline)})"
    lines = table(results)
    if memory:
        lines += ["", *memory]
    print("\n".join(lines))
    path = write_report(results, facts, args, started, memory)
    print(f"written: {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
