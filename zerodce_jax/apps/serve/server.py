"""The web layer of ``zerodce serve``: a ``ThreadingHTTPServer`` (standard
library only) in front of an ``engine.Engine``.

Routes (ids are random tokens made by the engine; nothing in a request is a
path on disk):

  GET    /                          the page (static/index.html)
  GET    /static/NAME               its script, style and icon (app.js,
                                    app.css, icon.svg)
  GET    /api/config                models, their defaults, formats, limits
  POST   /api/images                upload: the file's bytes as the body,
                                    its name in ``X-Filename`` (URL-encoded)
  GET    /api/images/ID/before      the input's preview (JPEG)
  GET    /api/images/ID/preview     the enhanced preview (JPEG), query:
                                    model, strength, exposure, denoise,
                                    highlights
  DELETE /api/images/ID             forget an image
  POST   /api/jobs                  download: JSON {ids, model, strength,
                                    exposure, denoise, highlights, format}
  GET    /api/jobs/ID               its progress (JSON)
  GET    /api/jobs/ID/file          the result (an image or a zip)
  DELETE /api/jobs/ID               cancel it

What every request must pass: a ``Host`` header naming this server (an IP
literal, ``localhost``, this machine's name or the ``--host`` given, and
the right port: DNS-rebinding pages are refused); for ``/api/``, no
``Sec-Fetch-Site`` other than ``same-origin``/``none``; for POST and
DELETE, the page's ``X-Zerodce`` header (a cross-origin page cannot send it
without a CORS preflight, which is never granted) and, when the browser
sends one, an ``Origin`` equal to this server's. Every response has
``Cache-Control: no-store``, ``X-Content-Type-Options: nosniff``, a strict
``Content-Security-Policy`` (scripts, styles and images from this server
only), no framing and no referrer.
"""

from __future__ import annotations

import contextlib
import http.server
import ipaddress
import json
import socket
import sys
import threading
import urllib.parse
from importlib import resources
from typing import Any, Iterator

from zerodce_jax.apps import quality
from zerodce_jax.apps.serve.engine import (Engine, ServeError, display_name,
                                          parse_controls)

__all__ = ["Server", "make_server", "running", "CSP"]

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; "
       "img-src 'self' blob:; connect-src 'self'; base-uri 'none'; "
       "form-action 'none'; frame-ancestors 'none'")
_STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
           "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
           "/static/app.css": ("app.css", "text/css; charset=utf-8"),
           "/static/icon.svg": ("icon.svg", "image/svg+xml"),
           "/favicon.ico": ("icon.svg", "image/svg+xml")}
_MAX_JSON = 64 * 2**10
_CHUNK = 2**20
PAGE_HEADER = "X-Zerodce"


def _load_static() -> dict[str, tuple[bytes, str]]:
  root = resources.files("zerodce_jax.apps.serve") / "static"
  return {route: ((root / name).read_bytes(), mime)
          for route, (name, mime) in _STATIC.items()}


def _is_ip(host: str) -> bool:
  try:
    ipaddress.ip_address(host.strip("[]"))
    return True
  except ValueError:
    return False


def _loopback(host: str) -> bool:
  if host == "localhost":
    return True
  try:
    return ipaddress.ip_address(host.strip("[]")).is_loopback
  except ValueError:
    return False


class Server(http.server.ThreadingHTTPServer):
  """The HTTP server: one thread per connection, the engine behind it.

  Args:
    address: ``(host, port)``; port 0 picks a free one.
    engine: the ``Engine`` that does the work (closed by ``close``).
    allowed_hosts: extra names the ``Host`` header may carry.
    log: print one line per request on stderr.
  """
  daemon_threads = True
  request_queue_size = 64

  def __init__(self, address: tuple[str, int], engine: Engine, *,
               allowed_hosts: tuple[str, ...] = (), log: bool = False):
    host = address[0]
    self.address_family = (socket.AF_INET6 if ":" in host
                           else socket.AF_INET)
    super().__init__(address, _Handler)
    self.engine = engine
    self.log = log
    self.static = _load_static()
    names = {"localhost", host.lower(), socket.gethostname().lower()}
    with contextlib.suppress(OSError):
      names.add(socket.getfqdn().lower())
    self.allowed_names = names | {h.lower() for h in allowed_hosts}

  @property
  def port(self) -> int:
    return self.server_address[1]

  @property
  def url(self) -> str:
    host = self.server_address[0]
    if host in ("0.0.0.0", "::"):
      host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    return (f"http://[{host}]:{self.port}/" if ":" in host
            else f"http://{host}:{self.port}/")

  @property
  def loopback_only(self) -> bool:
    return _loopback(self.server_address[0])

  def host_allowed(self, header: str | None) -> bool:
    """Whether a ``Host`` header names this server (DNS-rebinding guard)."""
    if not header:
      return False
    parsed = urllib.parse.urlsplit("//" + header)
    try:
      port = parsed.port or 80
    except ValueError:
      return False
    name = (parsed.hostname or "").lower()
    return port == self.port and (_is_ip(name) or name in self.allowed_names)

  def close(self) -> None:
    """Stops listening and closes the engine (its temporary folder goes)."""
    self.server_close()
    self.engine.close()


def make_server(engine: Engine, host: str = "127.0.0.1", port: int = 0, *,
                allowed_hosts: tuple[str, ...] = (), log: bool = False
                ) -> Server:
  """A ``Server`` listening on ``host:port`` (not yet serving: call
  ``serve_forever``). Raises OSError when it cannot listen there."""
  return Server((host, port), engine, allowed_hosts=allowed_hosts, log=log)


@contextlib.contextmanager
def running(engine: Engine, host: str = "127.0.0.1", port: int = 0,
            **options: Any) -> Iterator[Server]:
  """A server answering in a background thread for the ``with`` block
  (tests, notebooks); then stopped and its engine closed."""
  srv = make_server(engine, host, port, **options)
  thread = threading.Thread(target=srv.serve_forever, daemon=True,
                            name="zerodce-serve")
  thread.start()
  try:
    yield srv
  finally:
    srv.shutdown()
    thread.join(timeout=10)
    srv.close()


class _Handler(http.server.BaseHTTPRequestHandler):
  server: Server
  protocol_version = "HTTP/1.1"
  server_version = "zerodce-serve"
  sys_version = ""
  timeout = 120  # seconds a connection may sit idle or stall mid-request

  # ------------------------------------------------------------ plumbing --
  def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
    if self.server.log:
      sys.stderr.write(f"zerodce serve: {self.address_string()} "
                       f"{format % args}\n")

  def _send(self, status: int, body: bytes, mime: str,
            headers: dict[str, str] | None = None) -> None:
    self.send_response(status)
    self.send_header("Content-Type", mime)
    self.send_header("Content-Length", str(len(body)))
    self._common_headers()
    for k, v in (headers or {}).items():
      self.send_header(k, v)
    self.end_headers()
    if self.command != "HEAD":
      self.wfile.write(body)

  def _common_headers(self) -> None:
    self.send_header("Cache-Control", "no-store")
    self.send_header("X-Content-Type-Options", "nosniff")
    self.send_header("Content-Security-Policy", CSP)
    self.send_header("X-Frame-Options", "DENY")
    self.send_header("Referrer-Policy", "no-referrer")
    self.send_header("Cross-Origin-Opener-Policy", "same-origin")
    self.send_header("Cross-Origin-Resource-Policy", "same-origin")
    if self.close_connection:
      self.send_header("Connection", "close")

  def _json(self, status: int, obj: Any) -> None:
    self._send(status, json.dumps(obj).encode(), "application/json")

  def _error(self, status: int, message: str) -> None:
    self._json(status, {"error": message})

  def send_error(self, code: int, message: str | None = None,
                 explain: str | None = None) -> None:
    """http.server's own errors (bad request line, unsupported method) as
    JSON with the same headers as every other answer."""
    self.close_connection = True
    self._error(code, message or self.responses.get(code, ("error",))[0])

  def _body_length(self, limit: int) -> int:
    """The declared body size; ServeError when absent or over ``limit`` (the
    connection is then closed: the body is never read)."""
    text = self.headers.get("Content-Length")
    if self.headers.get("Transfer-Encoding"):
      self.close_connection = True
      raise ServeError("chunked uploads are not accepted", 411)
    try:
      n = int(text)
    except (TypeError, ValueError):
      self.close_connection = True
      raise ServeError("a Content-Length is needed", 411) from None
    if n < 0 or n > limit:
      self.close_connection = True
      raise ServeError(f"{n / 2**20:.1f} MiB: larger than the limit of "
                       f"{limit / 2**20:g} MiB", 413)
    return n

  def _read_json(self) -> dict[str, Any]:
    n = self._body_length(_MAX_JSON)
    try:
      obj = json.loads(self.rfile.read(n) or b"null")
    except ValueError:
      raise ServeError("the request is not valid JSON") from None
    if not isinstance(obj, dict):
      raise ServeError("the request is not a JSON object")
    return obj

  # ------------------------------------------------------------- checks --
  def _refusal(self) -> str | None:
    """Why this request is refused (wrong Host, cross-site), or None."""
    if not self.server.host_allowed(self.headers.get("Host")):
      return "unexpected Host header"
    path = urllib.parse.urlsplit(self.path).path
    site = self.headers.get("Sec-Fetch-Site")
    if path.startswith("/api/") and site not in (None, "same-origin",
                                                  "none"):
      return "cross-site request refused"
    if self.command in ("POST", "DELETE"):
      if self.headers.get(PAGE_HEADER) != "1":
        return "requests must come from the page"
      origin = self.headers.get("Origin")
      if origin is not None and origin != f"http://{self.headers['Host']}":
        return "cross-origin request refused"
    return None

  def _dispatch(self) -> None:
    why = self._refusal()
    if why:
      self.close_connection = True
      self._error(403, why)
      return
    try:
      self._route()
    except ServeError as e:
      self._error(e.status, str(e))
    except quality.ControlError as e:
      self._error(400, str(e))
    except (BrokenPipeError, ConnectionResetError):
      self.close_connection = True
    except Exception as e:  # noqa: BLE001 - the server goes on
      self.close_connection = True
      self._error(500, f"internal error ({type(e).__name__})")

  do_GET = do_HEAD = do_POST = do_DELETE = _dispatch

  def do_OPTIONS(self) -> None:  # no CORS preflight is ever granted
    self.close_connection = True
    self._error(405, "method not allowed")

  do_PUT = do_PATCH = do_OPTIONS

  # ------------------------------------------------------------- routes --
  def _route(self) -> None:
    url = urllib.parse.urlsplit(self.path)
    parts = url.path.split("/")[1:]
    method = "GET" if self.command == "HEAD" else self.command
    query = {k: v[-1] for k, v in urllib.parse.parse_qs(
        url.query, keep_blank_values=True).items()}
    engine = self.server.engine
    if method == "GET" and url.path in self.server.static:
      body, mime = self.server.static[url.path]
      self._send(200, body, mime)
    elif parts[:1] != ["api"]:
      raise ServeError("not found", 404)
    elif parts == ["api", "config"] and method == "GET":
      self._json(200, engine.config())
    elif parts == ["api", "images"] and method == "GET":
      self._json(200, {"images": engine.images()})
    elif parts == ["api", "images"] and method == "POST":
      self._upload()
    elif len(parts) == 3 and parts[1] == "images" and method == "DELETE":
      engine.remove(parts[2])
      self._json(200, {"removed": parts[2]})
    elif len(parts) == 4 and parts[1] == "images" and method == "GET":
      if parts[3] == "before":
        self._send(200, engine.before(parts[2]), "image/jpeg")
      elif parts[3] == "preview":
        choice = engine.choice(query.get("model"))
        controls = parse_controls(query, bundled=choice.bundled)
        self._send(200, engine.preview(parts[2], choice.id, controls),
                   "image/jpeg")
      else:
        raise ServeError("not found", 404)
    elif parts == ["api", "jobs"] and method == "POST":
      self._submit()
    elif len(parts) == 3 and parts[1] == "jobs" and method == "GET":
      self._json(200, engine.job(parts[2]).status())
    elif len(parts) == 3 and parts[1] == "jobs" and method == "DELETE":
      self._json(200, engine.cancel(parts[2]))
    elif (len(parts) == 4 and parts[1] == "jobs" and parts[3] == "file"
          and method == "GET"):
      self._download(parts[2])
    else:
      raise ServeError("not found", 404)

  def _upload(self) -> None:
    engine = self.server.engine
    n = self._body_length(engine.limits.max_upload_bytes)
    if n == 0:
      raise ServeError(f"{display_name(_name(self.headers))}: empty file")
    try:
      path = engine.upload_path()
    except ServeError:
      self.close_connection = True  # the body is left unread
      raise
    try:
      with open(path, "wb") as f:
        left = n
        while left:
          chunk = self.rfile.read(min(_CHUNK, left))
          if not chunk:
            break
          f.write(chunk)
          left -= len(chunk)
    except BaseException:
      engine.discard_upload(path)
      raise
    if left:
      engine.discard_upload(path)
      self.close_connection = True
      raise ServeError("the upload was interrupted")
    self._json(200, engine.add_image(path, _name(self.headers)))

  def _submit(self) -> None:
    engine = self.server.engine
    req = self._read_json()
    choice = engine.choice(_text(req.get("model")))
    controls = parse_controls(
        {k: _text(req[k]) for k in ("strength", "exposure", "denoise",
                                    "highlights") if req.get(k) is not None},
        bundled=choice.bundled)
    fmt = _text(req.get("format")) or None
    self._json(202, engine.submit(req.get("ids"), choice.id, controls, fmt))

  def _download(self, job_id: str) -> None:
    job = self.server.engine.job(job_id)
    if job.state != "done" or not job.path:
      raise ServeError(f"the download is {job.state}", 409)
    try:
      with open(job.path, "rb") as f:
        body = f.read()
    except OSError:
      raise ServeError("the download is gone", 410) from None
    self._send(200, body, job.mime, {
        "Content-Disposition": _disposition(job.filename or "download")})


def _text(v: Any) -> str | None:
  """A request value as text (numbers and booleans as the page sends
  them); None if absent."""
  if v is None:
    return None
  if isinstance(v, bool):
    return "true" if v else "false"
  return str(v)[:100]


def _name(headers) -> str:
  raw = headers.get("X-Filename") or ""
  return urllib.parse.unquote(raw, errors="replace")


def _disposition(name: str) -> str:
  """``attachment`` with an ASCII fallback and the UTF-8 name (RFC 6266);
  ``name`` is already free of control characters (``display_name``)."""
  ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\%' else "_"
                       for c in name)
  return (f'attachment; filename="{ascii_name}"; '
          f"filename*=UTF-8''{urllib.parse.quote(name, safe='')}")
