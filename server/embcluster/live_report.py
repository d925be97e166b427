"""The live view: every collection's cluster report, served read-only over HTTP beside ``/metrics``.

A WSGI app mounted by ``embcluster serve`` on the metrics endpoint (:class:`~embcluster.metrics.
MetricsEndpoint`: same address, port and TLS; no endpoint, no live view). GET and HEAD only:

* ``/report/`` lists the collections the caller may see, with links;
* ``/report/<name>`` is the report of the served model (what ``GetReport`` returns), rendered
  once per (collection, served version) and cached, so repeated requests cost a dictionary look-up;
  one render at a time per collection (the others wait for it and share it);
* ``/report/<name>/version`` is ``{"collection", "model_version", "revision"}``: the page asks for
  it every :data:`POLL_S` seconds and reloads when the revision changes (a run published a
  version, a rollback, the collection re-created). Opened from a file (a saved copy) the page
  does not poll. A collection without a model gets a short page that polls the same way.

Keys: when the server has API keys, every request needs one with the read scope, as
``Authorization: Bearer <key>`` or as the password of HTTP Basic authentication (what a browser
asks for; the user name is ignored); a key restricted to collections sees only those (others are
404, as over gRPC). No gRPC here: this module uses the service's plain-Python calls.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Protocol

from .auth import KeyRing, Principal
from .core.report import RenderedReport, ReportRevision
from .report.html import escape_html
from .errors import EmbclusterError, ErrorCode, NotFound
from .schema import CollectionInfo
from .validation import NAME_RE

__all__ = ["LiveReport", "ReportSource", "POLL_S", "PREFIX", "live_script"]

logger = logging.getLogger(__name__)

PREFIX = "/report"
POLL_S = 5  # how often an open page asks whether a new version is served

_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    # The report is inline scripts, styles and canvas; it fetches nothing but its own version URL.
    ("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                                "img-src data: blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
                                "frame-ancestors 'none'"),
]
_STATUS = {200: "200 OK", 301: "301 Moved Permanently", 401: "401 Unauthorized", 403: "403 Forbidden",
           404: "404 Not Found", 405: "405 Method Not Allowed", 500: "500 Internal Server Error",
           503: "503 Service Unavailable"}

_POLL = """<p id="live-status" class="note">Live view: this page reloads when the server publishes a new model
version (checked every {poll} s).</p>
<script>
(function () {{
  var revision = {revision};
  var status = document.getElementById("live-status");
  if (location.protocol !== "http:" && location.protocol !== "https:") {{
    if (status) {{ status.textContent = "A saved copy of the live view: it does not refresh."; }}
    return;
  }}
  var url = location.pathname.replace(/\\/+$/, "") + "/version";
  function check() {{
    fetch(url, {{cache: "no-store", credentials: "same-origin"}})
      .then(function (r) {{ return r.ok ? r.json() : null; }})
      .then(function (v) {{
        if (v && v.revision !== revision) {{ location.reload(); return; }}
        setTimeout(check, {poll_ms});
      }})
      .catch(function () {{ setTimeout(check, {poll_ms}); }});
  }}
  setTimeout(check, {poll_ms});
}})();
</script>
"""


class ReportSource(Protocol):
    """What the live view reads: :class:`~embcluster.core.service.EmbclusterService` provides it."""

    def list_collections(self) -> list[CollectionInfo]:
        """Every collection, with counts (the index)."""
        ...

    def collection_names(self) -> list[str]:
        """The names of the collections (cheap)."""
        ...

    def report_revision(self, name: str) -> ReportRevision:
        """Which report the collection has now, without counting (NotFound if there is none)."""
        ...

    def report(self, name: str, *, sample_size: int = 0, fit_message: bool = True) -> RenderedReport:
        """The rendered report of the served model."""
        ...


_e = escape_html


def _js_string(value: str) -> str:
    """A JavaScript string literal safe inside a ``<script>`` element."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def live_script(revision: str, poll_s: float = POLL_S) -> str:
    """The status line and the script that reloads the page when ``/version`` names another revision."""
    return _POLL.format(revision=_js_string(revision), poll=f"{poll_s:g}", poll_ms=int(poll_s * 1000))


@dataclass(frozen=True)
class _Cached:
    revision: str
    body: bytes


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    extra: tuple[tuple[str, str], ...] = ()


def _page(title: str, body: str, revision: str | None = None, poll_s: float = POLL_S) -> bytes:
    poll = live_script(revision, poll_s) if revision is not None else ""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{_e(title)}</title>\n'
            '<style>body { font: 14px/1.45 system-ui, sans-serif; margin: 20px auto; max-width: 1000px; '
            'padding: 0 24px; } table { border-collapse: collapse; } th, td { border-bottom: 1px solid #e4e4e4; '
            'padding: 4px 10px; text-align: left; } td.num { text-align: right; } .note { color: #555; }</style>\n'
            f'</head>\n<body>\n{body}\n{poll}</body>\n</html>\n').encode("utf-8")


def _inject(report_html: bytes, script: str) -> bytes:
    """The report with the live script added just before ``</body>``."""
    at = report_html.rfind(b"</body>")
    if at < 0:
        return report_html + script.encode("utf-8")
    return report_html[:at] + script.encode("utf-8") + report_html[at:]


class LiveReport:
    """The ``/report`` WSGI app (see the module docstring).

    Args:
        source: The service.
        keys: The server's API keys (None or empty: open, like the metrics endpoint without keys).
        poll_s: Seconds between an open page's version checks.
    """

    def __init__(self, source: ReportSource, *, keys: KeyRing | None = None, poll_s: float = POLL_S) -> None:
        self.source = source
        self.keys = keys if keys else None
        self.poll_s = poll_s
        self._cache: dict[str, _Cached] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.renders = 0  # reports rendered so far (each cache miss)

    @property
    def cached(self) -> list[str]:
        """The collections whose page is kept (one page each, for their served version)."""
        return sorted(self._cache)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            reply = _Reply(405, b"only GET and HEAD\n", "text/plain; charset=utf-8", (("Allow", "GET, HEAD"),))
        else:
            try:
                reply = self._route(environ.get("PATH_INFO", ""), environ.get("HTTP_AUTHORIZATION"))
            except Exception:  # a bug must not take the endpoint's thread down; the log has it
                logger.exception("live report: %s %s failed", method, environ.get("PATH_INFO", ""))
                reply = _Reply(500, b"internal error (see the server's log)\n", "text/plain; charset=utf-8")
        headers = [("Content-Type", reply.content_type), ("Content-Length", str(len(reply.body))),
                   ("Cache-Control", "no-store" if reply.content_type.startswith("application/json") else "no-cache"),
                   *_HEADERS, *reply.extra]
        start_response(_STATUS.get(reply.status, f"{reply.status} Error"), headers)
        return [b"" if method == "HEAD" else reply.body]

    # ------------------------------------------------------------------ routing

    def _route(self, path: str, header: str | None) -> _Reply:
        principal = self._principal(header)
        if self.keys is not None:
            if principal is None:
                return _Reply(401, b"a valid API key with the read scope is required (Authorization: Bearer <key>, "
                                   b"or the key as the password of Basic authentication)\n", "text/plain; charset=utf-8",
                              (("WWW-Authenticate", 'Basic realm="embcluster", charset="UTF-8"'),
                               ("WWW-Authenticate", 'Bearer realm="embcluster"')))
            if not principal.can("read"):
                return _Reply(403, b"the key lacks the read scope\n", "text/plain; charset=utf-8")
        if path == PREFIX:
            return _Reply(301, b"", "text/plain; charset=utf-8", (("Location", f"{PREFIX}/"),))
        rest = path[len(PREFIX) + 1:] if path.startswith(PREFIX + "/") else None
        if rest is None:
            return self._missing("no such page")
        if rest == "":
            return self._index(principal)
        name, _, tail = rest.rstrip("/").partition("/")
        if not NAME_RE.fullmatch(name) or tail not in ("", "version") or (
                principal is not None and not principal.sees(name)):
            return self._missing(f"collection {name[:64]!r} not found" if NAME_RE.fullmatch(name) else "no such page")
        try:
            now = self.source.report_revision(name)  # cheap: polled by every open page
        except NotFound:
            self._forget(name)
            return self._missing(f"collection {name!r} not found")
        if tail == "version":
            body = {"collection": name, "model_version": now.model_version, "revision": now.tag}
            return _Reply(200, json.dumps(body).encode(), "application/json")
        return self._report(now)

    def _principal(self, header: str | None) -> Principal | None:
        if self.keys is None:
            return None
        if header and header[:6].lower() == "basic " and len(header) <= 1024:
            try:
                decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
            except ValueError:  # binascii.Error, UnicodeDecodeError, and non-ASCII text in the header
                return None
            key = decoded.partition(":")[2]
            return self.keys.authenticate(key) if key else None
        return self.keys.from_header(header)

    def _missing(self, why: str) -> _Reply:
        return _Reply(404, _page("not found", f"<h1>Not found</h1>\n<p>{_e(why)}. "
                                               f'<a href="{PREFIX}/">All collections</a></p>'))

    # ------------------------------------------------------------------ pages

    def _index(self, principal: Principal | None) -> _Reply:
        rows = []
        for c in self.source.list_collections():
            if principal is not None and not principal.sees(c.name):
                continue
            model = f"v{c.served_model_version}" if c.served_model_version else "no model yet"
            rows.append(f'<tr><td><a href="{PREFIX}/{_e(c.name)}">{_e(c.name)}</a></td><td>{_e(c.input_kind)}</td>'
                        f'<td class="num">{c.point_count}</td><td>{_e(model)}</td><td class="num">{c.cluster_count}</td>'
                        f'<td class="num">{c.anomaly_count}</td></tr>')
        table = ('<table id="collections"><thead><tr><th>collection</th><th>kind</th><th>points</th><th>model</th>'
                 f'<th>clusters</th><th>anomalies</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
                 if rows else '<p class="note" id="no-collections">No collections yet.</p>')
        return _Reply(200, _page("embcluster: collections", f"<h1>Collections</h1>\n{table}\n"
                                 '<p class="note">Each report shows the served model; it reloads by itself when a '
                                 "run publishes a new version.</p>"))

    def _report(self, now: ReportRevision) -> _Reply:
        name = now.collection
        if not now.model_version:
            return self._waiting(now, "it has no cluster model yet: the report appears when the first run publishes one")
        cached = self._cache.get(name)
        if cached is not None and cached.revision == now.tag:
            return _Reply(200, cached.body)
        with self._lock(name):  # one render per collection at a time; those waiting share it
            cached = self._cache.get(name)
            if cached is not None and cached.revision == now.tag:
                return _Reply(200, cached.body)
            try:
                rendered = self.source.report(name, fit_message=False)  # HTTP: no gRPC message limit
            except NotFound:
                self._forget(name)
                return self._missing(f"collection {name!r} not found")
            except EmbclusterError as exc:
                if exc.code is ErrorCode.FAILED_PRECONDITION:  # e.g. no model served any more
                    return self._waiting(now, exc.message)
                return _Reply(503, _page("report failed", f"<h1>No report</h1>\n<p>{_e(exc.message)}</p>"))
            self.renders += 1
            # the version it shows (a run may have published another meanwhile: the page then reloads)
            revision = ReportRevision(name, now.created_at, rendered.model_version).tag
            body = _inject(rendered.html, live_script(revision, self.poll_s))
            self._cache[name] = _Cached(revision, body)
        self._prune()
        return _Reply(200, body)

    def _waiting(self, now: ReportRevision, why: str) -> _Reply:
        return _Reply(200, _page(f"embcluster report: {now.collection}",
                                 f'<h1>Collection <code>{_e(now.collection)}</code></h1>\n<p id="waiting">No report: '
                                 f'{_e(why.rstrip("."))}.</p>\n<p><a href="{PREFIX}/">All collections</a></p>', now.tag, self.poll_s))

    def _lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    def _forget(self, name: str) -> None:
        """Drop what is kept about a collection that no longer exists."""
        with self._guard:
            self._cache.pop(name, None)
            self._locks.pop(name, None)

    def _prune(self) -> None:
        """Drop the pages of deleted collections (at most one page per existing collection is kept)."""
        names = set(self.source.collection_names())
        for gone in [n for n in list(self._cache) if n not in names]:
            self._forget(gone)
