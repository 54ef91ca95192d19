"""The web side end to end: a real ``todoku serve`` with https and http listeners, asked over
real sockets and TLS, checked against the server's own self-signed certificate.

What each answer is checked against: Thunderbird's autoconfig format (the elements its parser
reads: incomingServer/outgoingServer with type, hostname, port, socketType, username,
authentication), Microsoft's Autodiscover 2006a response schema and the v2 JSON answer,
RFC 8461 §3.2 for the MTA-STS policy, and prometheus_client's own text parser for /metrics.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import smtplib
import socket
import ssl
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import PASSWORD, SERVICES, TodokuServer, client_tls_context, write_config

WEB = ("https", "http")
REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"


def bound_ports(server: TodokuServer) -> dict[str, int]:
    data = json.loads((server.data_dir / "run" / "listeners.json").read_text())
    return {name: value[1] for name, value in data.items() if name != "pid"}


def start_server(root: Path, extra: str = "") -> TodokuServer:
    root.mkdir(parents=True, exist_ok=True)
    config_path = write_config(root, extra, SERVICES + WEB)
    server = TodokuServer(root=root, config_path=config_path, data_dir=root / "data")
    server.add_user("alice@example.test")
    server.start()
    return server


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TodokuServer]:
    server = start_server(tmp_path_factory.mktemp("web") / "server")
    yield server
    server.stop()


def trust(server: TodokuServer) -> ssl.SSLContext:
    """Verify the https listener with the server's own certificate (the mail services' one)."""
    return ssl.create_default_context(cafile=str(server.data_dir / "tls" / "cert.pem"))


def fetch(
    server: TodokuServer,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    listener: str = "https",
) -> tuple[int, http.client.HTTPMessage, bytes]:
    port = bound_ports(server)[listener]
    connection: http.client.HTTPConnection
    if listener == "https":
        connection = http.client.HTTPSConnection(
            "127.0.0.1", port, timeout=15, context=trust(server)
        )
    else:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


# ----------------------------------------------------------------- Thunderbird autoconfig


def servers_of(document: ET.Element, kind: str) -> list[dict[str, str]]:
    out = []
    for element in document.iter(kind):
        entry = {"type": element.get("type", "")}
        for child in element:
            entry[child.tag] = (child.text or "").strip()
        out.append(entry)
    return out


@pytest.mark.parametrize(
    "path",
    [
        "/.well-known/autoconfig/mail/config-v1.1.xml",
        "/mail/config-v1.1.xml?emailaddress=alice%40example.test",
    ],
)
@pytest.mark.parametrize("listener", WEB)
def test_thunderbird_autoconfig_names_every_mail_listener(
    web_server: TodokuServer, path: str, listener: str
) -> None:
    status, headers, body = fetch(web_server, "GET", path, listener=listener)
    assert status == 200, body
    assert headers.get_content_type() in ("application/xml", "text/xml")
    root = ET.fromstring(body)
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    provider = root.find("emailProvider")
    assert provider is not None and provider.get("id") == "example.test"
    assert [d.text for d in provider.findall("domain")] == ["example.test", "example.org"]
    ports = bound_ports(web_server)
    common = {
        "hostname": "mx.example.test",
        "username": "%EMAILADDRESS%",
        "authentication": "password-cleartext",
    }
    # IMAP first, implicit TLS first: Thunderbird takes the first server it can use.
    assert servers_of(root, "incomingServer") == [
        {"type": "imap", "port": str(ports["imaps"]), "socketType": "SSL", **common},
        {"type": "imap", "port": str(ports["imap"]), "socketType": "STARTTLS", **common},
        {"type": "pop3", "port": str(ports["pop3s"]), "socketType": "SSL", **common},
        {"type": "pop3", "port": str(ports["pop3"]), "socketType": "STARTTLS", **common},
    ]
    assert servers_of(root, "outgoingServer") == [
        {"type": "smtp", "port": str(ports["submissions"]), "socketType": "SSL", **common},
        {"type": "smtp", "port": str(ports["submission"]), "socketType": "STARTTLS", **common},
    ]


def test_the_https_listener_uses_the_mail_certificate(web_server: TodokuServer) -> None:
    ports = bound_ports(web_server)
    context = client_tls_context()

    def certificate(port: int) -> bytes | None:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=15) as raw,
            context.wrap_socket(raw) as tls,
        ):
            return tls.getpeercert(binary_form=True)

    web_cert = certificate(ports["https"])
    assert web_cert and web_cert == certificate(ports["submissions"])


# ----------------------------------------------------------------- Autodiscover


def autodiscover_request(address: str) -> bytes:
    root = ET.Element(f"{{{REQUEST_NS}}}Autodiscover")
    request = ET.SubElement(root, f"{{{REQUEST_NS}}}Request")
    ET.SubElement(request, f"{{{REQUEST_NS}}}EMailAddress").text = address
    ET.SubElement(request, f"{{{REQUEST_NS}}}AcceptableResponseSchema").text = OUTLOOK_NS
    data: bytes = ET.tostring(root, encoding="utf-8")
    return data


def protocols_of(body: bytes) -> list[dict[str, str]]:
    root = ET.fromstring(body)
    assert root.tag == f"{{{RESPONSE_NS}}}Autodiscover"
    account = root.find(f"{{{OUTLOOK_NS}}}Response/{{{OUTLOOK_NS}}}Account")
    assert account is not None, body
    assert account.findtext(f"{{{OUTLOOK_NS}}}AccountType") == "email"
    assert account.findtext(f"{{{OUTLOOK_NS}}}Action") == "settings"
    return [
        {child.tag.split("}")[1]: child.text or "" for child in protocol}
        for protocol in account.findall(f"{{{OUTLOOK_NS}}}Protocol")
    ]


def test_autodiscover_xml_answers_for_an_address(web_server: TodokuServer) -> None:
    status, _, body = fetch(
        web_server,
        "POST",
        "/autodiscover/autodiscover.xml",
        autodiscover_request("alice@example.test"),
        {"Content-Type": "text/xml"},
    )
    assert status == 200, body
    ports = bound_ports(web_server)
    found = [(p["Type"], p["Port"], p["Encryption"], p["LoginName"]) for p in protocols_of(body)]
    assert found == [
        ("IMAP", str(ports["imaps"]), "SSL", "alice@example.test"),
        ("IMAP", str(ports["imap"]), "TLS", "alice@example.test"),
        ("POP3", str(ports["pop3s"]), "SSL", "alice@example.test"),
        ("POP3", str(ports["pop3"]), "TLS", "alice@example.test"),
        ("SMTP", str(ports["submissions"]), "SSL", "alice@example.test"),
        ("SMTP", str(ports["submission"]), "TLS", "alice@example.test"),
    ]
    for protocol in protocols_of(body):
        assert protocol["Server"] == "mx.example.test"
        assert protocol["AuthRequired"] == "on" and protocol["SPA"] == "off"


def test_autodiscover_for_another_domain_is_an_error(web_server: TodokuServer) -> None:
    status, _, body = fetch(
        web_server, "POST", "/autodiscover/autodiscover.xml", autodiscover_request("bob@else.test")
    )
    assert status == 200
    root = ET.fromstring(body)
    ns = f"{{{RESPONSE_NS}}}"
    assert root.findtext(f"{ns}Response/{ns}Error/{ns}ErrorCode") == "500"


def test_autodiscover_json_points_at_the_xml_endpoint(web_server: TodokuServer) -> None:
    https = bound_ports(web_server)["https"]
    for path in (
        "/autodiscover/autodiscover.json/v1.0/alice@example.test?Protocol=AutodiscoverV1",
        "/autodiscover/autodiscover.json?Email=alice%40example.test&Protocol=AutodiscoverV1",
    ):
        status, headers, body = fetch(web_server, "GET", path)
        assert status == 200, body
        assert headers.get_content_type() == "application/json"
        assert json.loads(body) == {
            "Protocol": "AutodiscoverV1",
            "Url": f"https://mx.example.test:{https}/autodiscover/autodiscover.xml",
        }
    status, _, body = fetch(
        web_server, "GET", "/autodiscover/autodiscover.json/v1.0/alice@example.test?Protocol=Ews"
    )
    assert status == 400 and json.loads(body)["ErrorCode"] == "InvalidProtocol"


# ----------------------------------------------------------------- MTA-STS

# RFC 8461 §3.2: sts-policy-field = sts-field-name ":" *WSP sts-field-value, names of at most
# 32 characters, values of visible characters and spaces, lines ending in LF or CRLF.
POLICY_LINE = re.compile(r"([A-Za-z0-9_]{1,32}):[ \t]*([\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?)")
MX_PATTERN = re.compile(r"(\*\.)?([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]*[a-z0-9])?")


def parse_policy(text: str) -> dict[str, list[str]]:
    """An RFC 8461 §3.2 policy, strictly: every line a field, the required fields present."""
    fields: dict[str, list[str]] = {}
    lines = text.split("\r\n") if "\r\n" in text else text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for line in lines:
        match = POLICY_LINE.fullmatch(line)
        assert match, f"not a policy field: {line!r}"
        fields.setdefault(match.group(1), []).append(match.group(2))
    assert fields["version"] == ["STSv1"]
    assert len(fields["mode"]) == 1 and fields["mode"][0] in ("enforce", "testing", "none")
    [max_age] = fields["max_age"]
    assert max_age.isdigit() and 0 <= int(max_age) <= 31557600
    if fields["mode"] != ["none"]:
        assert fields.get("mx"), "enforce and testing policies name their MX hosts"
    for mx in fields.get("mx", []):
        assert MX_PATTERN.fullmatch(mx), mx
    return fields


def test_mta_sts_policy_is_served_for_every_domain(web_server: TodokuServer) -> None:
    for host in ("mta-sts.example.test", "mta-sts.example.org"):
        status, headers, body = fetch(
            web_server, "GET", "/.well-known/mta-sts.txt", headers={"Host": host}
        )
        assert status == 200
        assert headers.get_content_type() == "text/plain"  # RFC 8461 §3.3
        policy = parse_policy(body.decode("ascii"))
        assert policy["mode"] == ["testing"] and policy["mx"] == ["mx.example.test"]
        assert policy["max_age"] == ["604800"]


def policy_id(server: TodokuServer) -> str:
    out = server.cli("dns-records", "example.test", "--ipv4", "192.0.2.1").stdout
    [record] = [line for line in out.splitlines() if line.startswith("_mta-sts.example.test.")]
    match = re.search(r'"v=STSv1; id=([A-Za-z0-9]{1,32})"', record)
    assert match, record
    return match.group(1)


def test_policy_id_changes_only_with_the_policy(tmp_path: Path) -> None:
    def configured(name: str, extra: str = "") -> TodokuServer:
        root = tmp_path / name
        root.mkdir()
        path = write_config(root, extra, SERVICES + WEB)
        return TodokuServer(root=root, config_path=path, data_dir=root / "data")

    testing = configured("testing")
    first = policy_id(testing)
    time.sleep(1.1)  # the id used to be the time of the run, to the second
    assert policy_id(testing) == first
    enforce = configured("enforce", '\n[mta_sts]\nmode = "enforce"\n')
    assert policy_id(enforce) != first
    out = enforce.cli("dns-records", "example.test", "--ipv4", "192.0.2.1").stdout
    for name in ("mta-sts", "autoconfig", "autodiscover"):
        assert f"{name}.example.test.\t3600\tIN\tCNAME\tmx.example.test." in out


def test_enforce_mode_is_served_after_a_restart(tmp_path: Path) -> None:
    server = start_server(tmp_path / "enforce", '\n[mta_sts]\nmode = "enforce"\nmax_age = "2w"\n')
    try:
        _, _, body = fetch(server, "GET", "/.well-known/mta-sts.txt")
        policy = parse_policy(body.decode("ascii"))
        assert policy["mode"] == ["enforce"] and policy["max_age"] == [str(14 * 86400)]
    finally:
        server.stop()


# ----------------------------------------------------------------- metrics


def scrape(server: TodokuServer, headers: dict[str, str] | None = None) -> dict[str, float]:
    status, response_headers, body = fetch(server, "GET", "/metrics", headers=headers)
    assert status == 200, body
    assert response_headers.get_content_type() == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(body.decode("utf-8")):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_metrics_move_with_real_traffic(web_server: TodokuServer) -> None:
    before = scrape(web_server)
    accepted = 'todoku_smtp_messages_total{listener="smtp",result="accepted"}'
    unknown_user = 'todoku_smtp_refusals_total{listener="smtp",stage="RCPT",status="5.1.1"}'
    auth = 'todoku_auth_failures_total{listener="submission"}'
    ports = bound_ports(web_server)

    with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=15) as client:
        client.ehlo("client.remote.test")
        client.sendmail("someone@remote.test", ["alice@example.test"], b"Subject: hi\r\n\r\nhi\r\n")
        client.mail("someone@remote.test")
        assert client.rcpt("nobody@example.test")[0] == 550
    with smtplib.SMTP("127.0.0.1", ports["submission"], timeout=15) as client:
        client.starttls(context=client_tls_context())
        client.ehlo()
        wrong = base64.b64encode(b"\0alice@example.test\0wrong " + PASSWORD.encode()).decode()
        assert client.docmd("AUTH", f"PLAIN {wrong}")[0] == 535  # one failure, one count
        client.login("alice@example.test", PASSWORD)
        # Mail for a domain the closed DNS port cannot resolve: the queue tries and defers it.
        client.sendmail("alice@example.test", ["bob@remote.test"], b"Subject: out\r\n\r\nout\r\n")

    # A POP3 session held open while scraping is counted as open.
    with socket.create_connection(("127.0.0.1", ports["pop3"]), timeout=15) as pop3:
        assert pop3.recv(512).startswith(b"+OK")
        during = scrape(web_server)
    assert during['todoku_sessions{listener="pop3"}'] >= 1

    after = scrape(web_server)
    assert after[accepted] == before.get(accepted, 0) + 1
    assert after[unknown_user] == before.get(unknown_user, 0) + 1
    assert after[auth] == before.get(auth, 0) + 1
    assert after['todoku_smtp_messages_total{listener="submission",result="accepted"}'] >= 1
    assert after["todoku_queue_messages{}"] >= 1
    assert after["todoku_queue_oldest_age_seconds{}"] >= 0

    def deferred() -> bool:
        samples = scrape(web_server)
        return any(
            k.startswith("todoku_deliveries_total{") and 'result="deferred"' in k for k in samples
        )

    wait_for(deferred, "a deferred delivery attempt in /metrics")


def test_metrics_token_is_required_when_configured(tmp_path: Path) -> None:
    server = start_server(tmp_path / "token", '\n[web]\nmetrics_token = "s3cret-token"\n')
    try:
        status, headers, _ = fetch(server, "GET", "/metrics")
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
        status, _, _ = fetch(server, "GET", "/metrics", headers={"Authorization": "Bearer nope"})
        assert status == 401
        assert scrape(server, {"Authorization": "Bearer s3cret-token"})
    finally:
        server.stop()


# ----------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "path", ["/", "/admin/nothing", "/.well-known/mta-sts.txt.bak", "/../etc/passwd"]
)
def test_unknown_paths_are_404(web_server: TodokuServer, path: str) -> None:
    status, headers, _ = fetch(web_server, "GET", path)
    assert status == 404
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "aiohttp" not in headers.get("Server", "")


def test_autodiscover_body_over_the_limit_is_413(web_server: TodokuServer) -> None:
    big = b"<x>" + b"a" * 64 * 1024 + b"</x>"
    status, _, _ = fetch(web_server, "POST", "/autodiscover/autodiscover.xml", big)
    assert status == 413
    # A chunked body declares no length: it is cut while read.
    port = bound_ports(web_server)["https"]
    with (
        socket.create_connection(("127.0.0.1", port), timeout=15) as raw,
        trust(web_server).wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(
            b"POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        for _ in range(8):
            tls.sendall(b"2000\r\n" + b"a" * 0x2000 + b"\r\n")
        tls.sendall(b"0\r\n\r\n")
        reply = tls.recv(100)
    assert reply.startswith(b"HTTP/1.1 413"), reply


def test_hostile_address_is_escaped_in_the_xml(web_server: TodokuServer) -> None:
    hostile = '<script>alert("x")</script>&amp;@example.test'
    status, _, body = fetch(
        web_server, "POST", "/autodiscover/autodiscover.xml", autodiscover_request(hostile)
    )
    assert status == 200
    assert b"<script>" not in body
    assert b"&lt;script&gt;" in body
    assert {p["LoginName"] for p in protocols_of(body)} == {hostile}
    # Thunderbird's answer never repeats the address; a hostile one still gets a clean document.
    query = "/mail/config-v1.1.xml?emailaddress=%3Cscript%3Ealert(1)%3C%2Fscript%3E%40example.test"
    status, _, body = fetch(web_server, "GET", query)
    assert status == 200 and b"<script" not in body
    ET.fromstring(body)
    # Control characters (header injection, log forging) make it no address at all.
    status, _, _ = fetch(
        web_server, "GET", "/mail/config-v1.1.xml?emailaddress=a%0d%0ab%40example.test"
    )
    assert status == 400


def test_autodiscover_refuses_entity_declarations(web_server: TodokuServer) -> None:
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY l "lol"><!ENTITY l2 "&l;&l;&l;&l;">]>'
        b'<Autodiscover xmlns="' + REQUEST_NS.encode() + b'"><Request>'
        b"<EMailAddress>&l2;@example.test</EMailAddress></Request></Autodiscover>"
    )
    status, _, _ = fetch(web_server, "POST", "/autodiscover/autodiscover.xml", laughs)
    assert status == 400


def test_http_redirects_to_the_configured_host_whatever_the_host_header(
    web_server: TodokuServer,
) -> None:
    https = bound_ports(web_server)["https"]
    status, headers, _ = fetch(
        web_server, "GET", "/some/page?x=1", headers={"Host": "evil.test"}, listener="http"
    )
    assert status == 301
    assert headers["Location"] == f"https://mx.example.test:{https}/some/page?x=1"
    # The MTA-STS policy is HTTPS only (RFC 8461 §3.3): http redirects it like anything else.
    status, _, _ = fetch(web_server, "GET", "/.well-known/mta-sts.txt", listener="http")
    assert status == 301


# ----------------------------------------------------------------- configuration errors


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('\n[mta_sts]\nmode = "strict"\n', "mta_sts.mode: must be"),
        ('\n[mta_sts]\nmax_age = "2y"\n', "mta_sts.max_age: not a duration"),
        ("\n[web]\nmetrics_token = 5\n", "web.metrics_token: expected"),
        ('\n[web]\nport = "x"\n', "web.port: unknown"),
    ],
)
def test_bad_web_settings_are_one_line_and_status_2(
    tmp_path: Path, extra: str, message: str
) -> None:
    path = write_config(tmp_path, extra, SERVICES + WEB)
    server = TodokuServer(root=tmp_path, config_path=path, data_dir=tmp_path / "data")
    result = server.cli("config", "check", check=False)
    assert result.returncode == 2, result
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr


def test_http_alone_is_a_configuration_error(tmp_path: Path) -> None:
    path = write_config(tmp_path, "", ("smtp", "http"))
    server = TodokuServer(root=tmp_path, config_path=path, data_dir=tmp_path / "data")
    result = server.cli("serve", check=False)
    assert result.returncode == 2
    assert "listen.http: set listen.https too" in result.stderr
