"""Client autoconfiguration documents: what a mail program needs to set itself up from an
address, built from the listeners this server runs.

- Thunderbird's autoconfig (``config-v1.1.xml``, the format of
  https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat);
- Microsoft's Autodiscover "POX" answer for an ``email`` account (POP3 and SMTP settings, the
  2006a response schema), and the Autodiscover v2 JSON answer that points at it.

No I/O: the handlers (web/routes.py) pass in what the client sent. Documents are built with
xml.etree, so every value is escaped by the serializer, never pasted into markup; the address a
client asks about appears only where the format needs it (Autodiscover's LoginName), escaped.

Order matters: clients take the first server they can use, so IMAP comes before POP3, and
implicit TLS (imaps 993, pop3s 995, submissions 465, RFC 8314 §3.3) before STARTTLS.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass

from todoku.config import Config

# (service, protocol, socket type): Thunderbird's socketType values are "SSL" (TLS from the
# first byte), "STARTTLS" and "plain"; todoku offers no plaintext login off loopback.
# IMAP first: it keeps every device in sync, POP3 serves one that downloads and deletes.
INCOMING = (
    ("imaps", "imap", "SSL"),
    ("imap", "imap", "STARTTLS"),
    ("pop3s", "pop3", "SSL"),
    ("pop3", "pop3", "STARTTLS"),
)
OUTGOING = (("submissions", "smtp", "SSL"), ("submission", "smtp", "STARTTLS"))
MAX_ADDRESS = 320  # RFC 3696 errata: 64 octets of local part, @, 255 of domain
REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"


@dataclass(frozen=True, slots=True)
class MailServer:
    protocol: str  # "imap", "pop3" or "smtp" (Thunderbird's type attribute)
    hostname: str
    port: int
    socket_type: str  # "SSL" or "STARTTLS"


@dataclass(frozen=True, slots=True)
class ClientSettings:
    domains: tuple[str, ...]
    incoming: tuple[MailServer, ...]
    outgoing: tuple[MailServer, ...]


def client_settings(config: Config, ports: Mapping[str, int]) -> ClientSettings:
    """The servers a mail program should use. ``ports``: the port each listener is bound to
    (the configured one, or what the system chose for port 0)."""
    host = config.hostname

    def servers(table: tuple[tuple[str, str, str], ...]) -> tuple[MailServer, ...]:
        return tuple(
            MailServer(protocol, host, ports[service], socket_type)
            for service, protocol, socket_type in table
            if service in ports
        )

    return ClientSettings(config.domains, servers(INCOMING), servers(OUTGOING))


def clean_address(value: str) -> str | None:
    """An address a client asked about, or None when it is not one: bounded, one ``@``-separated
    domain, no control characters. The local part may hold anything else (it is escaped)."""
    value = value.strip()
    if not value or len(value) > MAX_ADDRESS or any(ord(c) < 32 or ord(c) == 127 for c in value):
        return None
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        return None
    return f"{local}@{domain.lower().rstrip('.')}"


def _domain_of(settings: ClientSettings, address: str | None) -> str:
    """The local domain an address belongs to, else the first configured one."""
    if address is not None:
        domain = address.rpartition("@")[2]
        if domain in settings.domains:
            return domain
    return settings.domains[0]


def _xml(root: ET.Element) -> bytes:
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data


def thunderbird(settings: ClientSettings, address: str | None) -> bytes:
    """config-v1.1.xml. ``%EMAILADDRESS%`` is Thunderbird's placeholder for what the user typed."""
    domain = _domain_of(settings, address)
    root = ET.Element("clientConfig", version="1.1")
    provider = ET.SubElement(root, "emailProvider", id=domain)
    for name in settings.domains:
        ET.SubElement(provider, "domain").text = name
    ET.SubElement(provider, "displayName").text = f"{domain} (todoku)"
    ET.SubElement(provider, "displayShortName").text = domain
    for kind, servers in (
        ("incomingServer", settings.incoming),
        ("outgoingServer", settings.outgoing),
    ):
        for server in servers:
            element = ET.SubElement(provider, kind, type=server.protocol)
            ET.SubElement(element, "hostname").text = server.hostname
            ET.SubElement(element, "port").text = str(server.port)
            ET.SubElement(element, "socketType").text = server.socket_type
            ET.SubElement(element, "username").text = "%EMAILADDRESS%"
            # The password goes inside TLS (SSL or STARTTLS above): "cleartext" names the SASL
            # mechanism (PLAIN/LOGIN, USER/PASS), not the connection.
            ET.SubElement(element, "authentication").text = "password-cleartext"
    return _xml(root)


class AutodiscoverError(ValueError):
    """A request that is not an Autodiscover request for an address (answered 400)."""


def autodiscover_request(body: bytes) -> str:
    """The EMailAddress of an Autodiscover POX request. The body is already bounded in size; a
    document type declaration is refused outright, so no entity is ever expanded."""
    if b"<!" in body:  # DOCTYPE, ENTITY (and comments/CDATA, which requests never need)
        raise AutodiscoverError("document type declarations are not accepted")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise AutodiscoverError(f"not XML: {exc}") from None
    element = root.find(f"{{{REQUEST_NS}}}Request/{{{REQUEST_NS}}}EMailAddress")
    if element is None:
        element = root.find("Request/EMailAddress")  # some clients omit the namespace
    address = clean_address(element.text or "") if element is not None else None
    if address is None:
        raise AutodiscoverError("no EMailAddress in the request")
    return address


def autodiscover_response(settings: ClientSettings, address: str) -> bytes:
    """The 2006a answer for an IMAP/POP3/SMTP ("email") account, or error 500 for a domain that is
    not ours (Exchange's "The e-mail address cannot be found")."""
    root = ET.Element("Autodiscover", xmlns=RESPONSE_NS)
    if address.rpartition("@")[2] not in settings.domains:
        response = ET.SubElement(root, "Response")
        error = ET.SubElement(response, "Error")
        ET.SubElement(error, "ErrorCode").text = "500"
        ET.SubElement(error, "Message").text = "The e-mail address cannot be found."
        return _xml(root)
    response = ET.SubElement(root, "Response", xmlns=OUTLOOK_NS)
    account = ET.SubElement(response, "Account")
    ET.SubElement(account, "AccountType").text = "email"
    ET.SubElement(account, "Action").text = "settings"
    for server in settings.incoming + settings.outgoing:
        protocol = ET.SubElement(account, "Protocol")
        ET.SubElement(protocol, "Type").text = server.protocol.upper()
        ET.SubElement(protocol, "Server").text = server.hostname
        ET.SubElement(protocol, "Port").text = str(server.port)
        ET.SubElement(protocol, "LoginName").text = address
        ET.SubElement(protocol, "DomainRequired").text = "off"
        ET.SubElement(protocol, "SPA").text = "off"
        ET.SubElement(protocol, "SSL").text = "on"
        # Encryption (which wins over SSL where supported): "SSL" is TLS from the first byte,
        # "TLS" is STARTTLS.
        ET.SubElement(protocol, "Encryption").text = "SSL" if server.socket_type == "SSL" else "TLS"
        ET.SubElement(protocol, "AuthRequired").text = "on"
        if server.protocol == "smtp":
            ET.SubElement(protocol, "UsePOPAuth").text = "on"
            ET.SubElement(protocol, "SMTPLast").text = "off"
    return _xml(root)


def autodiscover_v2(protocol: str, xml_url: str) -> tuple[int, dict[str, str]]:
    """Autodiscover v2 (``autodiscover.json``): only ``AutodiscoverV1`` is served, the URL of the
    POX endpoint; Exchange answers other protocols (EWS, ActiveSync) with 400 and this error."""
    if protocol.lower() == "autodiscoverv1":
        return 200, {"Protocol": "AutodiscoverV1", "Url": xml_url}
    return 400, {
        "ErrorCode": "InvalidProtocol",
        "ErrorMessage": "The given protocol value is invalid. Supported values are"
        " 'AutodiscoverV1'.",
    }


def apple_profile(settings: ClientSettings, address: str, hostname: str) -> bytes:
    """An Apple configuration profile (``.mobileconfig``) with one Mail payload
    (``com.apple.mail.managed``, Apple's Device Management "Mail" payload) for ``address``:
    the first incoming and outgoing server (implicit TLS first), the address as the login,
    and no password (the device asks for it). The identifiers are derived from the host and
    the address, so downloading it again replaces the same profile instead of adding one."""
    import plistlib
    import uuid

    if not settings.incoming or not settings.outgoing:
        raise ValueError("no IMAP or POP3, or no submission listener to configure")
    incoming, outgoing = settings.incoming[0], settings.outgoing[0]
    identifier = ".".join(reversed(hostname.split("."))) + ".todoku.mail"
    profile_uuid = uuid.uuid5(uuid.NAMESPACE_DNS, f"{address}.profile.{hostname}")
    mail_uuid = uuid.uuid5(uuid.NAMESPACE_DNS, f"{address}.mail.{hostname}")
    mail = {
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{identifier}.account.{mail_uuid}",
        "PayloadUUID": str(mail_uuid).upper(),
        "PayloadDisplayName": address,
        "EmailAccountDescription": f"{address} ({hostname})",
        "EmailAccountType": "EmailTypeIMAP" if incoming.protocol == "imap" else "EmailTypePOP",
        "EmailAddress": address,
        "IncomingMailServerHostName": incoming.hostname,
        "IncomingMailServerPortNumber": incoming.port,
        "IncomingMailServerUseSSL": True,  # implicit TLS or STARTTLS: todoku wants TLS either way
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "IncomingMailServerUsername": address,
        "OutgoingMailServerHostName": outgoing.hostname,
        "OutgoingMailServerPortNumber": outgoing.port,
        "OutgoingMailServerUseSSL": True,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerUsername": address,
        "OutgoingPasswordSameAsIncomingPassword": True,
    }
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": identifier,
        "PayloadUUID": str(profile_uuid).upper(),
        "PayloadDisplayName": f"Mail: {address}",
        "PayloadDescription": f"The mail account {address} on {hostname} (todoku)",
        "PayloadRemovalDisallowed": False,
        "PayloadContent": [mail],
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML)
