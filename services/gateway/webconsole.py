"""The web console: one page and its scripts and styles, served from the package.

The page is plain HTML, CSS and ES modules (no build step, nothing loaded from another
origin), so it works offline and under a CSP that allows only this origin. It calls the
public API like any client, with the API key the trader signs in with; the gateway serves
the files and nothing else of the console: no session, no cookie, no server-side state.
"""

from __future__ import annotations

from pathlib import Path

from litestar import MediaType, get
from litestar.response import File
from litestar.static_files import create_static_files_router

CONSOLE_DIR = Path(__file__).with_name("console")
#: Where the console's files are served; the page itself is at `/`.
ASSETS_PATH = "/console"


@get("/", include_in_schema=False, media_type=MediaType.HTML)
async def console_page() -> File:
    """The console's single page; its views are chosen by the URL's fragment (`#/orders/...`)."""
    return File(CONSOLE_DIR / "index.html", content_disposition_type="inline", media_type=MediaType.HTML)


console_assets = create_static_files_router(
    path=ASSETS_PATH, directories=[CONSOLE_DIR], name="console", include_in_schema=False
)


def is_console(path: str) -> bool:
    """Whether `path` is the console's page or one of its files (which get the console's CSP)."""
    return path == "/" or path.startswith(ASSETS_PATH + "/")
