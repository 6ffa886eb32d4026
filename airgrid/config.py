"""Settings for every airgrid process, read from AIRGRID_* environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

EMBEDDED_KAFKA_HOST = "127.0.0.1"
EMBEDDED_KAFKA_PORT = 9092


# The reference zone's (Wuhan): inspection windows such as 07:00–09:00 are local times.
DEFAULT_ZONE_TIMEZONE = "Asia/Shanghai"


class Settings(BaseSettings):
    """One settings object; each field is documented in the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="AIRGRID_", extra="ignore")

    kafka_bootstrap: str | None = Field(
        default=None,
        description="Kafka bootstrap servers; unset means the embedded Tansu broker.",
    )
    kafka_idempotence: str = Field(
        default="auto",
        description="Idempotent producers: on, off, or auto (on when the broker supports it).",
    )
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    kafka_ssl_cafile: str | None = Field(
        default=None, description="Kafka TLS: CA bundle that signed the brokers' certificates."
    )
    kafka_ssl_certfile: str | None = Field(
        default=None, description="Kafka TLS: client certificate (mutual TLS)."
    )
    kafka_ssl_keyfile: str | None = Field(
        default=None, description="Kafka TLS: client private key (mutual TLS)."
    )
    kafka_ssl_check_hostname: bool = Field(
        default=True, description="Kafka TLS: verify the broker's host name."
    )
    database_ssl_mode: str = Field(
        default="disable",
        description="PostgreSQL TLS: disable, require, verify-ca or verify-full.",
    )
    database_ssl_rootcert: str | None = Field(
        default=None, description="PostgreSQL TLS: CA bundle that signed the server certificate."
    )
    database_ssl_cert: str | None = Field(
        default=None, description="PostgreSQL TLS: client certificate (mutual TLS)."
    )
    database_ssl_key: str | None = Field(
        default=None, description="PostgreSQL TLS: client private key (mutual TLS)."
    )
    embedded_kafka_port: int = Field(
        default=EMBEDDED_KAFKA_PORT,
        ge=1,
        le=65535,
        description="Port of the embedded broker `airgrid up` starts when no bootstrap is set.",
    )
    topic_prefix: str = Field(default="", description="Prepended to every topic name.")
    topic_replication: int = Field(default=1, ge=1)
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL; unset means embedded SQLite under the state dir.",
    )
    state_dir: Path = Field(default=Path(".airgrid"), description="Embedded data and demo keys.")
    admin_key: str | None = Field(default=None, description="First admin credential.")
    reference_data: Path | None = Field(
        default=None, description="Zone data directory; unset means the packaged reference zone."
    )
    zone_timezone: str = Field(
        default=DEFAULT_ZONE_TIMEZONE,
        description="IANA time zone in which inspection plans' daily active windows are read.",
    )
    dispatch_url: str | None = Field(
        default=None,
        description="Telemetry: dispatch's base URL for case escalations; unset turns them off.",
    )
    dispatch_key: str | None = Field(
        default=None,
        description="Telemetry: the department key case escalations post incidents with.",
    )
    escalation_retry_max_s: float = Field(
        default=30.0, gt=0, description="Telemetry: longest wait between escalation retries."
    )
    host: str = "127.0.0.1"
    registry_port: int = 8001
    telemetry_port: int = 8002
    dispatch_port: int = 8003
    log_level: str = "INFO"
    log_format: str = Field(default="json", description="json or console")
    tracing: Literal["off", "otlp", "console"] = Field(
        default="off",
        description="Traces: off, otlp (OTEL_EXPORTER_OTLP_* say where) or console (stdout).",
    )
    max_body_bytes: int = Field(default=1_048_576, description="Largest accepted request body.")
    rate_limit_per_second: float = Field(
        default=500.0,
        ge=0,
        description="Requests per second each credential may sustain per process; 0 disables.",
    )
    rate_limit_burst: int = Field(
        default=2000, ge=1, description="Requests a credential may send at once above the rate."
    )
    database_retry_after_seconds: int = Field(
        default=5, ge=1, description="Retry-After sent with 503 while the database is down."
    )
    outbox_poll_seconds: float = 0.5
    sla_seconds: float = 300.0
    link_lost_seconds: float = 15.0
    low_battery_pct: float = 25.0
    battery_reserve_pct: float = 20.0
    off_route_m: float = Field(
        default=150.0, description="Telemetry: distance from the commanded path that is off-route."
    )
    track_retention_hours: float = Field(
        default=168.0, description="Telemetry: track points older than this are purged."
    )
    telemetry_batch_records: int = Field(
        default=8000, ge=1, description="Telemetry: most raw records handled in one batch."
    )
    telemetry_fetch_wait_ms: int = Field(
        default=10,
        ge=0,
        description="Telemetry: longest broker wait of a fetch that finds nothing new (latency).",
    )
    feed_keepalive_seconds: float = Field(
        default=15.0, gt=0, description="Feeds: SSE keep-alive comment after this much silence."
    )
    feed_max_streams_per_key: int = Field(
        default=4, ge=1, description="Feeds: SSE streams one credential may hold per process."
    )
    dispatch_tick_seconds: float = Field(
        default=1.0, gt=0, description="Dispatch: clock tick for SLA alerts and patrols."
    )
    duplicate_radius_m: float = Field(
        default=300.0, ge=0, description="Dispatch: same-type reports this close may be linked."
    )
    duplicate_window_s: float = Field(
        default=600.0, ge=0, description="Dispatch: ...and accepted within this many seconds."
    )
    preempt_max_priority: int = Field(
        default=1, ge=0, le=4, description="Dispatch: priorities that may preempt lower ones."
    )
    detour_margin_m: float = Field(
        default=30.0, ge=0, description="Dispatch: clearance kept around no-fly polygons."
    )
    patrol_enabled: bool = Field(default=True, description="Dispatch: fly routine inspection.")
    patrol_spacing_m: float = Field(
        default=1000.0, gt=0, description="Dispatch: inspection swath; routes visit every cell."
    )
    patrol_keep_docked: int = Field(
        default=2, ge=0, description="Dispatch: idle drones a nest keeps before it patrols."
    )
    patrol_interval_s: float = Field(
        default=1800.0, ge=0, description="Dispatch: least time between sorties of one route."
    )
    relay_from_s: float = Field(
        default=1200.0,
        gt=0,
        description="Dispatch: incidents asking this long on scene may be held by a relay chain.",
    )
    relay_min_on_scene_s: float = Field(
        default=300.0, gt=0, description="Dispatch: least time on scene of a relay chain's link."
    )
    relay_lead_s: float = Field(
        default=180.0,
        ge=0,
        description="Dispatch: a relief arrives this long before the drone on scene must leave.",
    )
    relay_alert_s: float = Field(
        default=600.0,
        ge=0,
        description="Dispatch: relay_at_risk this long before the drone on scene must leave.",
    )
    coverage_cell_m: float = Field(
        default=250.0, gt=0, le=250.0, description="Coverage: side of the grid cells, metres."
    )
    rebalance_enabled: bool = Field(
        default=True, description="Coverage: move idle drones between nests to close holes."
    )
    rebalance_trigger_ratio: float = Field(
        default=0.995, gt=0, le=1, description="Coverage: rebalance below this coverage share."
    )
    rebalance_interval_s: float = Field(
        default=5.0, gt=0, description="Coverage: seconds between coverage/rebalance passes."
    )

    @property
    def embedded_kafka(self) -> bool:
        return not self.kafka_bootstrap

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka_bootstrap or f"{EMBEDDED_KAFKA_HOST}:{self.embedded_kafka_port}"

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.state_dir / 'airgrid.db').as_posix()}"

    def port_of(self, service: str) -> int:
        ports = {
            "registry": self.registry_port,
            "telemetry": self.telemetry_port,
            "dispatch": self.dispatch_port,
        }
        return ports[service]

    def url_of(self, service: str) -> str:
        return f"http://{self.host}:{self.port_of(service)}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
