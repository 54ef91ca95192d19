"""Issue 12, item 11: the certificate made on first start is a server leaf, not a CA.

A user told to trust it (to stop their mail program's warning) must not thereby trust anything
its key could sign for other names. Read from a real server over TLS (port 465), and used as the
only trust anchor of a verifying client, as a mail program that pins it does."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.conftest import TodokuServer, client_tls_context


def test_self_signed_certificate_is_a_server_leaf(make_server: Callable[..., TodokuServer]) -> None:
    server = make_server(services=("submissions",))
    with (
        socket.create_connection(("127.0.0.1", server.ports["submissions"]), timeout=15) as raw,
        client_tls_context().wrap_socket(raw, server_hostname="mx.example.test") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca is False
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment
    assert not usage.key_cert_sign and not usage.crl_sign
    extended = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(extended) == [ExtendedKeyUsageOID.SERVER_AUTH]
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "mx.example.test" in names.get_values_for_type(x509.DNSName)

    # Pinned as the only trust anchor, it still verifies for the host name.
    pinned = ssl.create_default_context(cafile=str(server.data_dir / "tls" / "cert.pem"))
    with (
        socket.create_connection(("127.0.0.1", server.ports["submissions"]), timeout=15) as raw,
        pinned.wrap_socket(raw, server_hostname="mx.example.test") as tls,
    ):
        assert tls.recv(64).startswith(b"220 ")
