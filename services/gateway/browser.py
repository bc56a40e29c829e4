"""What keeps a browser from being turned against the API: headers, CORS, JSON-only POSTs.

- Every answer says `nosniff`, may not be framed, sends no referrer, and (outside the
  schema) may not be cached and may load nothing (`default-src 'none'`): the API serves
  JSON, never a page. The Swagger UI under /schema loads its scripts and styles, so it
  keeps a CSP that only forbids framing. The web console (`/` and `/console/`) may load
  scripts, styles and images from this origin and connect to it (HTTP and WebSocket),
  nothing else: no inline script or style, no other origin, no framing, no form posts.
- CORS is off unless `CORS_ALLOW_ORIGINS` lists origins; then only those may call, with
  the headers a client needs (API key, JSON) and seeing the rate-limit headers.
- A POST must say `Content-Type: application/json`: a form or text/plain POST is what a
  page on another site can send without a preflight.
"""

from __future__ import annotations

from litestar import Request
from litestar.config.cors import CORSConfig
from litestar.types import Message, Scope

from services.gateway.webconsole import is_console
from services.gateway.errors import ApiError, clip

_COMMON = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
_API = [
    (b"cache-control", b"no-store"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
]
_SCHEMA = [(b"content-security-policy", b"frame-ancestors 'none'")]
# CSP Level 3: 'self' in connect-src also matches ws:// and wss:// of the page's own host.
_CONSOLE = [
    (b"cache-control", b"no-cache"),  # revalidated, so a new release's files are picked up at once
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        b"base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
]


async def security_headers(message: Message, scope: Scope) -> None:
    """`before_send` hook: adds the headers to every HTTP answer, errors and 404s included."""
    if message["type"] != "http.response.start":
        return
    path = scope.get("path", "")
    extra = _COMMON + (_SCHEMA if path.startswith("/schema") else _CONSOLE if is_console(path) else _API)
    names = {name for name, _ in extra}
    headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
    message["headers"] = headers + extra


def cors(allowed_origins: list[str]) -> CORSConfig | None:
    """CORS for exactly these origins, or none at all when the list is empty."""
    if not allowed_origins:
        return None
    return CORSConfig(
        allow_origins=allowed_origins,
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["Authorization", "X-API-Key", "Content-Type"],
        expose_headers=["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy", "Retry-After"],
    )


async def require_json(request: Request) -> None:
    """`before_request` hook: a POST body must be declared as JSON (UTF-8), else 415."""
    if request.method != "POST":
        return
    media_type, options = request.content_type
    charset = options.get("charset", "utf-8").lower()
    if media_type.lower() != "application/json" or charset not in ("utf-8", "utf8"):
        sent = request.headers.get("content-type")
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the order as Content-Type: application/json (got {clip(sent) if sent else 'none'})",
            field="content-type",
        )
