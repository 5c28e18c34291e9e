"""The web pages: chat, jobs (with datasets and models) and evaluation, under `/ui/`.

Plain HTML, CSS and JavaScript modules shipped as package data (``belle_gateway/web``), with no
build step. The pages themselves need no key: they ask for the team's API key, keep it in the
browser (sessionStorage, or localStorage when "remember" is ticked) and send it with every `/v1`
call they make, so everything they show goes through the same API and the same checks as any client.

Every page is served with a Content-Security-Policy that allows only this origin's scripts, styles
and API: the pages put data into the DOM with ``textContent`` only, and the policy is the second line
of defence should a model reply or a dataset name ever carry markup.
"""

from __future__ import annotations

import re
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from belle_gateway.errors import APIError

router = APIRouter(include_in_schema=False)

WEB_PACKAGE_DIR = "web"
_FILE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*\.(html|js|css|svg)")
_MEDIA_TYPES = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
}
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Small files, and a new release must show at once: the browser revalidates every time.
    "Cache-Control": "no-cache",
}


def web_file(name: str) -> bytes | None:
    """A file of the pages by name (no folders), or None."""
    if not _FILE_NAME.fullmatch(name):
        return None
    path = resources.files("belle_gateway") / WEB_PACKAGE_DIR / name
    return path.read_bytes() if path.is_file() else None


@router.get("/")
def root():
    return RedirectResponse("/ui/", status_code=302)


@router.get("/ui")
def ui_without_slash():
    return RedirectResponse("/ui/", status_code=302)


@router.get("/ui/")
def index():
    return page("index.html")


@router.get("/ui/{name}")
def page(name: str):
    """One page, script or style sheet."""
    body = web_file(name)
    if body is None:
        raise APIError(404, f"no page {name!r}", code="page_not_found")
    return Response(body, media_type=_MEDIA_TYPES[name.rsplit(".", 1)[1]], headers=HEADERS)
