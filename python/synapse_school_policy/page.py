"""The audit page: static files packaged with the module (web/), served on
Synapse's client listener under /_synapse/client/school_policy/audit/.

The files are read once at start-up. Every answer carries a strict
Content-Security-Policy: scripts and styles from this path only, requests to
this homeserver only, no framing, no inline script; the page keeps the
access token in memory and escapes every value it shows (web/app.js).
"""
from __future__ import annotations

from importlib import resources
from typing import Any

from twisted.web.resource import Resource

PAGE_PREFIX = "/_synapse/client/school_policy/audit"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}


def _load() -> dict[str, bytes]:
    web = resources.files("synapse_school_policy").joinpath("web")
    return {name: web.joinpath(name).read_bytes() for name in _FILES}


class PageResource(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self._files = _load()

    def render(self, request: Any) -> Any:
        # Before the method is dispatched, so that Twisted's own answers (405
        # for a method other than GET and HEAD, 500 if rendering fails) carry
        # them as well as the files and the 404.
        request.setHeader(b"Content-Security-Policy", CONTENT_SECURITY_POLICY.encode())
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"Referrer-Policy", b"no-referrer")
        request.setHeader(b"X-Frame-Options", b"DENY")
        return super().render(request)

    def render_GET(self, request: Any) -> bytes:
        path = request.path.decode("utf-8", "replace")[len(PAGE_PREFIX):]
        if path in ("", "/"):
            if path == "":
                # Relative links (app.js, app.css) resolve below the slash.
                request.setResponseCode(301)
                request.setHeader(b"Location", (PAGE_PREFIX + "/").encode())
                return b""
            name = "index.html"
        else:
            name = path.lstrip("/")
        body = self._files.get(name)
        request.setHeader(b"Cache-Control", b"no-cache")
        if body is None:
            request.setResponseCode(404)
            request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
            return b"Not found\n"
        request.setHeader(b"Content-Type", _FILES[name].encode())
        return body

    def render_HEAD(self, request: Any) -> bytes:
        return self.render_GET(request)
