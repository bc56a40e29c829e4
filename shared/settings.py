"""Settings read from the environment into frozen structs, with working local defaults.

Each field `foo_bar` of a settings struct is read from the environment variable `FOO_BAR`.
Values are converted to the field's type; a bad value fails start-up with the variable's
name. Tests build settings structs directly instead of patching the environment.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, TypeVar

import msgspec

T = TypeVar("T", bound=msgspec.Struct)


class SettingsError(ValueError):
    pass


class Common(msgspec.Struct, frozen=True, kw_only=True):
    """Settings every service reads."""

    nats_url: str = "nats://127.0.0.1:4222"
    #: This service's NATS user and password (`shared.natsauth`); empty: none (an open server).
    nats_user: str = ""
    nats_password: str = ""
    engine_namespace: str = ""
    stream_replicas: int = 1
    log_level: str = "info"
    log_format: str = "json"
    otel_traces_exporter: str = "none"  # none | console | otlp
    #: Share of the traces a service starts that are recorded (OpenTelemetry's standard
    #: variable for the ratio sampler); a continued trace follows its sender.
    otel_traces_sampler_arg: float = 1.0
    ops_host: str = "127.0.0.1"
    #: How long messages to NATS gather before they are written (`shared.natsclient`): one
    #: socket write carries everything a burst of work sent. 0: one loop round only.
    nats_flush_delay_ms: float = 1.0


#: The read model's default URL; the gateway's names a read-only role, the projector's the
#: writer that owns the tables (router and executor have no database at all).
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/engine"


def load(cls: type[T], env: Mapping[str, str] | None = None, **overrides: Any) -> T:
    """Build `cls` from the environment (`FIELD_NAME` per field), then `overrides`."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    for field in msgspec.structs.fields(cls):
        name = field.name.upper()
        if name in env and env[name] != "":
            raw[field.name] = env[name]
    raw.update(overrides)
    try:
        return msgspec.convert(raw, cls, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"invalid setting: {exc} (environment variable names are upper-case field names)") from exc
