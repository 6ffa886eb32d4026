"""What every service shares at run time: infrastructure handles and the FastAPI app shell."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.responses import PlainTextResponse, Response

from airgrid import tracing
from airgrid.auth import Authenticator, bootstrap_admin
from airgrid.bus import Producer, ensure_topics
from airgrid.config import Settings
from airgrid.db import DatabaseUnavailable, check_database, create_engine, session_factory
from airgrid.migrate import require_schema_at_head
from airgrid.observability import http_metrics_middleware, metrics_response
from airgrid.problems import BodySizeLimit, install_problem_handlers, problem_response
from airgrid.rate_limit import RateLimit
from airgrid.worker_runs import cancel_within

log = logging.getLogger("airgrid.service")


@dataclass
class Infrastructure:
    """Database, broker and credentials, opened once per process."""

    service: str
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    producer: Producer
    authenticator: Authenticator
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # Readiness of a worker that supervises itself: "ok" or what it is doing instead.
    checks: dict[str, Callable[[], str]] = field(default_factory=dict)

    @classmethod
    async def open(cls, service: str, settings: Settings) -> Infrastructure:
        engine = create_engine(settings)
        await check_database(engine)
        await require_schema_at_head(engine)
        await ensure_topics(settings)
        producer = Producer(settings, source=f"airgrid/{service}")
        await producer.start()
        sessions = session_factory(engine)
        if settings.admin_key:
            await bootstrap_admin(sessions, settings.admin_key)
        authenticator = Authenticator(sessions, admin_key=settings.admin_key)
        return cls(service, settings, engine, sessions, producer, authenticator)

    def spawn(self, coroutine: Awaitable[None], name: str) -> None:
        """Run a background worker for the life of the service; a crash is logged loudly."""

        async def guarded() -> None:
            try:
                await coroutine
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("worker crashed", extra={"worker": name, "service": self.service})
                raise

        self.tasks.append(asyncio.create_task(guarded(), name=name))

    async def close(self) -> None:
        await cancel_within(self.tasks, self.service)
        await self.producer.stop()
        await self.engine.dispose()

    async def readiness(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            await check_database(self.engine, timeout=2.0)
            checks["database"] = "ok"
        except Exception as error:
            checks["database"] = f"unreachable: {error}"
        try:
            await asyncio.wait_for(self.producer.raw.client.fetch_all_metadata(), timeout=2.0)
            checks["broker"] = "ok"
        except Exception as error:
            checks["broker"] = f"unreachable: {error!r}"
        for name, check in self.checks.items():
            checks[name] = check()
        for task in self.tasks:
            if task.done():
                checks[task.get_name()] = "stopped"
        return checks


Lifespan = Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]

# Errors that mean "the database cannot be reached right now", as opposed to a bad query.
DATABASE_DOWN_ERRORS: tuple[type[BaseException], ...] = (
    DatabaseUnavailable,
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    sa_exc.DisconnectionError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    ConnectionError,
)


def is_database_down(error: BaseException) -> bool:
    """True when the error, or what caused it, says the database is unreachable."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DATABASE_DOWN_ERRORS):
            return True
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        current = current.__cause__ or current.__context__
    return False


def is_unstorable_text(error: BaseException) -> bool:
    """True when the database refused a value of the request (NUL in text, bad encoding)."""
    current: BaseException | None = error
    for _ in range(8):
        if current is None:
            return False
        if isinstance(
            current, asyncpg.CharacterNotInRepertoireError | asyncpg.UntranslatableCharacterError
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


_SECRETS = re.compile(
    r"(ag_[0-9a-f]{16}_)[A-Za-z0-9_-]{8,}"
    r"|((?:authorization|bearer|password|api[_-]?key)[\"']?\s*[:=]?\s*(?:bearer\s+)?)"
    r"[^\s\"',}]{4,}"
    r"|(://[^:/@\s]+:)[^@\s]+(?=@)",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """Mask credentials (airgrid keys, bearer tokens, passwords) in a line of text."""
    return _SECRETS.sub(lambda m: (m.group(1) or m.group(2) or m.group(3) or "") + "***", text)


class CredentialRedactor(logging.Filter):
    """Log filter: no credential ever reaches a log line, whatever a handler formats."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            text = str(record.exc_info[1])
            if redact(text) != text:
                record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        for key, value in list(vars(record).items()):
            if isinstance(value, str) and key not in ("msg", "message", "exc_text"):
                masked = redact(value)
                if masked != value:
                    setattr(record, key, masked)
        return True


def install_credential_redactor() -> None:
    """Attach the redactor to every handler of the root logger (idempotent)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, CredentialRedactor) for f in handler.filters):
            handler.addFilter(CredentialRedactor())


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details; `detail` says what to do.",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
    "additionalProperties": True,
}

READY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["status", "service"],
    "properties": {"status": {"const": "ready"}, "service": {"type": "string"}},
}

# Answers that the shared shell itself gives on any /v1 operation.
SHELL_PROBLEMS = {
    "400": "Malformed request (for example a body that is not JSON)",
    "401": "Missing, unknown, revoked or expired credential",
    "403": "The credential's role or scope does not allow this",
    "413": "Request body too large",
    "422": "The request does not match the schema; `errors` lists the fields",
    "429": "Too many requests from this credential; see Retry-After",
    "503": "A dependency (the database) is down; see Retry-After",
}


def document_shell_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the problem+json answers of the shell to every /v1 operation of an OpenAPI document;
    FastAPI's own 422 shape is replaced by the problem shape that is actually sent."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("Problem", PROBLEM_SCHEMA)
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    retry_after = {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds"}}
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            wanted = dict(SHELL_PROBLEMS) if path.startswith("/v1/") else {}
            if "{" in path and path.startswith("/v1/"):
                wanted["404"] = "No such resource that you may see"
            if path == "/readyz":
                wanted["503"] = "Not ready: a dependency is unreachable"
            for code, description in wanted.items():
                current = responses.get(code)
                fastapi_422 = (
                    code == "422"
                    and current is not None
                    and "HTTPValidationError" in str(current.get("content", ""))
                )
                if current is None or fastapi_422:
                    responses[code] = {"description": description, "content": problem}
                    if code in ("429", "503"):
                        responses[code]["headers"] = retry_after
                else:
                    current.setdefault("content", {}).setdefault(
                        "application/problem+json", problem["application/problem+json"]
                    )
    return schema


def install_database_down_handler(app: FastAPI, retry_after_seconds: int) -> None:
    """A database outage answers 503 with Retry-After, never 500; other errors stay 500."""

    async def database_down(request: Request, error: Exception) -> Response:
        if is_unstorable_text(error):
            return problem_response(
                422,
                "Invalid request",
                "A text value contains a character the database cannot store (such as NUL, "
                "U+0000); remove it and retry.",
                kind="invalid-request",
                instance=request.url.path,
                errors=[{"field": "text", "message": "contains an unstorable character"}],
            )
        if not is_database_down(error):
            log.error(
                "unhandled error",
                exc_info=(type(error), error, error.__traceback__),
                extra={"path": request.url.path},
            )
            return problem_response(
                500,
                "Internal error",
                "The server failed to handle this request; it was logged. Retry later.",
                instance=request.url.path,
            )
        log.warning(
            "database unreachable; answering 503",
            extra={"path": request.url.path, "error": type(error).__name__},
        )
        return problem_response(
            503,
            "Database unavailable",
            "The database cannot be reached right now; nothing was changed. "
            f"Retry after {retry_after_seconds} s.",
            kind="database-unavailable",
            instance=request.url.path,
            headers={"Retry-After": str(retry_after_seconds)},
        )

    for error_type in (*DATABASE_DOWN_ERRORS, sa_exc.DBAPIError):
        app.add_exception_handler(error_type, database_down)


def create_service_app(
    *,
    service: str,
    settings: Settings,
    title: str,
    description: str,
    lifespan: Callable[[FastAPI], AsyncIterator[None]],
) -> FastAPI:
    """The shell every service shares: health, readiness, metrics, problems, body and rate
    limits, 503 while the database is down, credentials masked in logs, and server spans
    when tracing is on."""
    app = FastAPI(
        title=title,
        description=description,
        version="1.0.0",
        lifespan=contextlib.asynccontextmanager(lifespan),
    )
    install_problem_handlers(app)
    install_database_down_handler(app, settings.database_retry_after_seconds)
    install_credential_redactor()
    app.middleware("http")(http_metrics_middleware(service))
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        RateLimit, per_second=settings.rate_limit_per_second, burst=settings.rate_limit_burst
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_shell_problems(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    tracing.configure_tracing(settings, service)
    tracing.instrument_app(app)

    @app.get("/healthz", tags=["operations"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Database and broker are reachable",
        responses={200: {"content": {"application/json": {"schema": READY_SCHEMA}}}},
    )
    async def readyz() -> Response:
        infra: Infrastructure | None = getattr(app.state, "infra", None)
        if infra is None:
            return problem_response(503, "Not ready", "The service is starting.", kind="not-ready")
        checks = await infra.readiness()
        if all(value == "ok" for value in checks.values()):
            return Response(
                content=f'{{"status":"ready","service":"{service}"}}',
                media_type="application/json",
            )
        return problem_response(
            503,
            "Not ready",
            "A dependency is unreachable; see checks.",
            kind="not-ready",
            headers={"Retry-After": "5"},
            checks=checks,
        )

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        response_class=PlainTextResponse,
        responses={
            200: {
                "description": "The Prometheus text exposition format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    )
    async def metrics() -> Response:
        return metrics_response()

    return app
