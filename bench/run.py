#!/usr/bin/env python3
"""todoku against Postfix and Dovecot, on this machine, in the same run (issue 7).

    python bench/run.py            full counts (several minutes)
    python bench/run.py --quick    small counts (a couple of minutes)

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
POSTFIX_MAILDIR = Path(os.environ.get("VMAIL_BASE", "/var/spool/bench-vmail")) / "example.test" / "b"
POSTFIX_QUEUE = Path("/var/spool/postfix")
# todoku's data lives next to Postfix's queue: the same file system, so the same fsync cost.
TODOKU_BASE = Path(os.environ.get("TODOKU_BENCH_DIR", "/var/spool/bench-todoku"))

# The repository's virtualenv when there is one, so that ``python3 bench/run.py`` works as is.
TODOKU_PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv" / "bin" / "python").exists() else sys.executable
POP3_PORT = int(os.environ.get("POP3_PORT", "2110"))
DOVECOT_MAILDIR = Path(os.environ.get("POP_BASE", "/var/spool/bench-pop")) / "bench" / "Maildir"
DOVECOT_PASSWORD = "bench"  # setup-peers.sh
POP3_PASSWORD = "bench-password"  # todoku wants 8 characters or more
SENDER = "a@example.test"
RECIPIENT = "b@example.test"
START_TIMEOUT = 30.0
CLIENT_TIMEOUT = 600.0  # one smtp-source run, whatever the count
DELIVERY_TIMEOUT = 300.0  # from client end until the last message is in the mailbox


# --------------------------------------------------------------------------- small helpers


def find_tool(name: str) -> str | None:
    for directory in ("/usr/sbin", "/usr/lib/postfix", "/usr/lib/postfix/sbin", "/usr/libexec/postfix"):
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
                ["bash", str(PEERS_SCRIPT), action], stdout=log, stderr=subprocess.STDOUT, timeout=900, check=False
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
    peak_rss_kib: int = 0
    cpu_s: float = 0.0  # user + system time of the server process, all threads

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
        )
        if result.returncode != 0:
            sys.exit(f"bench: todoku {' '.join(args)}: {result.stderr.strip()}")

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            'hostname = "mx.todoku.test"\n'
            'domains = ["example.test"]\n'
            'data_dir = "./data"\n'
            "\n[listen]\n"
            'smtp = "127.0.0.1:0"\n'
            'pop3 = "127.0.0.1:0"\n'
            "\n[auth]\nallow_plaintext_on_loopback = true\n"
        )
        self._cli("user", "add", RECIPIENT, "--password-stdin", stdin=POP3_PASSWORD + "\n")
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            [TODOKU_PYTHON, "-m", "todoku", "serve", "--config", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
        )
        log.close()
        listeners = self.data_dir / "run" / "listeners.json"
        if not wait_until(lambda: listeners.exists() or self.process.poll() is not None, START_TIMEOUT):
            self.stop()
            sys.exit("bench: todoku serve did not start in time")
        if self.process.poll() is not None:
            sys.exit(f"bench: todoku serve exited: {(self.root / 'server.log').read_text()[-2000:]}")
        bound = json.loads(listeners.read_text())
        self.port = int(bound["smtp"][1])
        self.pop3_port = int(bound["pop3"][1])

    def mailbox_count(self) -> int:
        with sqlite3.connect(f"file:{self.data_dir / 'todoku.db'}?mode=ro", uri=True, timeout=10) as db:
            return int(db.execute("SELECT count(*) FROM messages WHERE mailbox = ?", (RECIPIENT,)).fetchone()[0])

    def read_peak_rss(self) -> int:
        if self.process is None:
            return 0
        with suppress(OSError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_rss_kib = int(line.split()[1])
        return self.peak_rss_kib

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
def todoku_instance(base: Path) -> Iterator[Todoku]:
    root = Path(tempfile.mkdtemp(prefix="run-", dir=base))
    server = Todoku(root)
    try:
        server.start()
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


def smtp_source(workload: SmtpWorkload, port: int) -> float:
    tool = find_tool("smtp-source")
    assert tool is not None
    argv = [
        tool,
        "-s", str(workload.sessions),
        "-m", str(workload.messages),
        "-l", str(workload.size),
        "-f", SENDER,
        "-t", RECIPIENT,
        f"127.0.0.1:{port}",
    ]  # fmt: skip
    started = time.monotonic()
    result = subprocess.run(argv, capture_output=True, text=True, timeout=CLIENT_TIMEOUT, check=False)
    elapsed = time.monotonic() - started
    if result.returncode != 0 or result.stderr.strip():
        raise RuntimeError(f"smtp-source against port {port} failed: {result.stderr.strip()[:500]}")
    return elapsed


def postfix_queue_files() -> int:
    count = 0
    for sub in ("incoming", "active", "deferred"):
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


def run_todoku_smtp(workload: SmtpWorkload) -> Sample:
    with todoku_instance(TODOKU_BASE) as server:
        subprocess.run(["sync"], check=False, timeout=120)
        cpu_before = server.read_cpu()
        started = time.monotonic()
        client = smtp_source(workload, server.port)
        if not wait_until(lambda: server.mailbox_count() >= workload.messages, DELIVERY_TIMEOUT, 0.01):
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
            SmtpWorkload("smtp-4k-1", 1, 200, 4096),
            SmtpWorkload("smtp-100k-20", 20, 200, 100 * 1024),
        ]
    return [
        SmtpWorkload("smtp-1k-20", 20, 5000, 1024),
        SmtpWorkload("smtp-4k-20", 20, 5000, 4096),
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
        (DOVECOT_MAILDIR / "new" / f"{1700000000 + number}.M{number}P1.bench").write_bytes(content.replace(b"\r\n", b"\n"))
    for root, dirs, files in os.walk(DOVECOT_MAILDIR.parent):
        for name in dirs + files:
            os.chown(os.path.join(root, name), owner.pw_uid, owner.pw_gid)
    os.chown(DOVECOT_MAILDIR.parent, owner.pw_uid, owner.pw_gid)


def run_pop3(messages: int, size: int, rounds: int, result: Result) -> None:
    """One filled mailbox per server; then alternate the timed fetches. The first fetch of each
    (indexing, cold caches) is not counted."""
    fill_dovecot(messages, size)
    pop3_fetch_all(POP3_PORT, "bench", DOVECOT_PASSWORD, messages)  # warm-up: Dovecot builds its index
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
                    sample = Sample(elapsed, elapsed, server.read_peak_rss(), server.read_cpu() - cpu_before)
                    result.todoku.append(sample)
                else:
                    elapsed = pop3_fetch_all(POP3_PORT, "bench", DOVECOT_PASSWORD, messages)
                    sample = Sample(elapsed, elapsed)
                    result.other.append(sample)
                print(f"pop3 round {round_number + 1} {who}: {elapsed:.2f}s", flush=True)


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
            f" {rss / 1024:.0f} MiB | {1000 * median([s.cpu_s for s in r.todoku]) / r.messages:.2f} |"
        )
    return lines


def write_report(results: list[Result], facts: dict[str, str], args: argparse.Namespace, started: str) -> Path:
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
    out += ["", "## Every measurement (seconds: client finished / last message in the mailbox)", ""]
    for r in results:
        out.append(f"- {r.label}")
        out.append("  - todoku: " + ", ".join(f"{s.client_s:.2f}/{s.delivered_s:.2f}" for s in r.todoku))
        out.append(f"  - {r.peer}: " + ", ".join(f"{s.client_s:.2f}/{s.delivered_s:.2f}" for s in r.other))
    path.write_text("\n".join(out) + "\n")
    return path


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts; a couple of minutes")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per workload (default 3, quick 2)")
    parser.add_argument("--only", default="", help="comma-separated workload names (e.g. smtp-1k-20)")
    parser.add_argument("--keep-peers", action="store_true", help="leave the peers running afterwards")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (2 if args.quick else 3)
    if os.geteuid() != 0:
        sys.exit("bench: run as root (the peers are system services)")
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%M%S")
    TODOKU_BASE.mkdir(parents=True, exist_ok=True)
    facts = machine_facts()
    peers = Peers()
    results: list[Result] = []
    try:
        peers.ensure()
        wanted = {name for name in args.only.split(",") if name}
        for workload in smtp_workloads(args.quick):
            if wanted and workload.name not in wanted:
                continue
            result = Result(workload.label(), "Postfix", workload.messages)
            for round_number in range(args.rounds):
                order = ("todoku", "peer") if round_number % 2 == 0 else ("peer", "todoku")
                for who in order:
                    if who == "todoku":
                        sample = run_todoku_smtp(workload)
                        result.todoku.append(sample)
                    else:
                        sample = run_postfix_smtp(workload)
                        result.other.append(sample)
                    print(
                        f"{workload.name} round {round_number + 1} {who}: client {sample.client_s:.2f}s,"
                        f" in mailbox {sample.delivered_s:.2f}s"
                        + (f", server CPU {sample.cpu_s:.2f}s" if who == "todoku" else ""),
                        flush=True,
                    )
            results.append(result)
        if not wanted or "pop3" in wanted:
            count = 300 if args.quick else 5000
            result = Result(f"POP3 UIDL+RETR {count}x4 KiB (poplib client)", "Dovecot", count)
            run_pop3(count, 4096, args.rounds, result)
            results.append(result)
    finally:
        if not args.keep_peers:
            peers.stop()
    lines = table(results)
    print("\n".join(lines))
    path = write_report(results, facts, args, started)
    print(f"written: {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
