"""Production transport settings: Kafka TLS/SASL and PostgreSQL TLS reach the clients."""

from __future__ import annotations

import ssl

import pytest

from airgrid.bus import client_options
from airgrid.config import Settings
from airgrid.db import DatabaseUnavailable, postgres_tls


def test_kafka_sasl_ssl_options() -> None:
    s = Settings(
        kafka_bootstrap="kafka-1:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="airgrid",
        kafka_sasl_password="pw",
        kafka_ssl_check_hostname=True,
    )
    options = client_options(s)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "airgrid"
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED


def test_kafka_plaintext_has_no_tls() -> None:
    assert "ssl_context" not in client_options(Settings(kafka_bootstrap="k:9092"))


@pytest.mark.parametrize(
    ("mode", "verify", "hostname"),
    [
        ("require", ssl.CERT_NONE, False),
        ("verify-ca", ssl.CERT_REQUIRED, False),
        ("verify-full", ssl.CERT_REQUIRED, True),
    ],
)
def test_postgres_tls_modes(mode: str, verify: ssl.VerifyMode, hostname: bool) -> None:
    context = postgres_tls(Settings(database_ssl_mode=mode))["ssl"]
    assert context.verify_mode == verify and context.check_hostname is hostname


def test_postgres_tls_disabled_and_unknown_mode() -> None:
    assert postgres_tls(Settings()) == {}
    with pytest.raises(DatabaseUnavailable, match="verify-full"):
        postgres_tls(Settings(database_ssl_mode="sometimes"))
