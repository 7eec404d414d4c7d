"""Small loopback HTTP servers that speak the real W&B and Axiom protocols.

The real `wandb` and `axiom-py` clients talk to these in tests, so the code
under test runs unmodified: only the server on the other end is ours. Each
server binds 127.0.0.1 on a free port, keeps a log of every request for
assertions, and can be told to misbehave for the next N matching requests
(status codes with Retry-After, dropped connections, malformed bodies).
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["DROP", "FakeHTTPServer", "Fault", "Request", "Response"]


@dataclass
class Request:
    """One request as the server saw it; `op` is the GraphQL operation, if any."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    op: str | None = None
    status: int | None = None  # what the server answered (None: connection dropped)
    json: Any = None  # the parsed body, when the app parsed one
    at: float = field(default_factory=time.monotonic)


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


DROP = object()  # a handler result meaning: close the connection without answering


@dataclass
class Fault:
    """Misbehave for the next `times` requests that `match`.

    Without `match`, every request counts except background telemetry
    (wandb-core's /sdk/otel/ posts, which arrive whenever an Api is collected).

    kind: "status" (answer `status`, with `retry_after` seconds if given),
    "drop" (close the connection without a response), "cut" (send the
    headers and half of the real answer, then close the connection),
    "slow" (answer for real after `delay` seconds: a client timeout), or
    "malformed" (answer 200 with a body that is not what the protocol promises).
    """

    kind: str
    times: int
    status: int = 500
    retry_after: float | None = None
    match: Callable[[Request], bool] | None = None
    delay: float = 0.0


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up (wandb-core at exit, a test's dropped connection) are not errors here.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class FakeHTTPServer:
    """A threaded HTTP/1.1 server on 127.0.0.1; subclasses implement `handle`."""

    def __init__(self) -> None:
        self.log: list[Request] = []
        self._faults: list[Fault] = []
        self.faults_served: Counter[str] = Counter()  # kind -> requests answered with that fault
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------
    def start(self) -> FakeHTTPServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _serve(self) -> None:
                owner._serve(self)

            do_GET = do_POST = do_HEAD = do_PUT = _serve

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # --- test controls -----------------------------------------------------
    def inject(
        self,
        kind: str,
        times: int = 1,
        *,
        status: int = 500,
        retry_after: float | None = None,
        match: Callable[[Request], bool] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Make the next `times` requests matching `match` (default: all) misbehave."""
        assert kind in ("status", "drop", "cut", "slow", "malformed"), kind
        with self._lock:
            self._faults.append(Fault(kind, times, status, retry_after, match, delay))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def requests(self, *, op: str | None = None, path: str | None = None, method: str | None = None) -> list[Request]:
        """Logged requests, optionally only one GraphQL op, path prefix or method."""
        with self._lock:
            log = list(self.log)
        return [
            r
            for r in log
            if (op is None or r.op == op)
            and (path is None or r.path.startswith(path))
            and (method is None or r.method == method)
        ]

    def reset_log(self) -> None:
        with self._lock:
            self.log.clear()

    # --- for subclasses ----------------------------------------------------
    def describe(self, request: Request) -> None:
        """Fill in `request.op`/`request.json` before faults are matched."""

    def handle(self, request: Request) -> Response | object:
        raise NotImplementedError

    def malformed(self, request: Request) -> Response:
        return Response(200, b'{"data": {"truncated', {"Content-Type": "application/json"})

    # --- plumbing ------------------------------------------------------------
    def _take_fault(self, request: Request) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                wanted = fault.match(request) if fault.match else not request.path.startswith("/sdk/otel")
                if fault.times > 0 and wanted:
                    fault.times -= 1
                    self.faults_served[fault.kind] += 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        request = Request(
            method=h.command,
            path=parts.path,
            query=parse_qs(parts.query),
            headers={k.lower(): v for k, v in h.headers.items()},
            body=body,
        )
        with contextlib.suppress(Exception):  # an unparsable body is the handler's problem to answer
            self.describe(request)
        with self._lock:
            self.log.append(request)

        fault = self._take_fault(request)
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay)
        if fault is None or fault.kind in ("slow", "cut"):
            try:
                result = self.handle(request)
            except Exception as exc:  # a bug in the fake should show up as a 500, not a hang
                result = Response(500, f"fake server error: {type(exc).__name__}: {exc}".encode())
        elif fault.kind == "drop":
            result = DROP
        elif fault.kind == "malformed":
            result = self.malformed(request)
        else:
            headers = {"Content-Type": "application/json"}
            if fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
            body = b'{"message": "injected fault", "error": "injected fault"}'
            result = Response(fault.status, body, headers)

        if result is DROP:
            _hang_up(h)
            return
        assert isinstance(result, Response)
        request.status = result.status
        h.send_response(result.status)
        headers = {"Content-Type": "application/octet-stream", **result.headers}
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(result.body)))
        h.end_headers()
        if fault is not None and fault.kind == "cut":  # the connection drops mid-response
            h.wfile.write(result.body[: len(result.body) // 2])
            h.wfile.flush()
            _hang_up(h)
            return
        if h.command != "HEAD":
            h.wfile.write(result.body)


def _hang_up(h: BaseHTTPRequestHandler) -> None:
    """Close the client's connection at once, whatever was (or was not) sent."""
    h.close_connection = True
    with contextlib.suppress(OSError):
        h.connection.shutdown(socket.SHUT_RDWR)
