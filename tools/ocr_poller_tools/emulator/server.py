"""The emulator over HTTP on 127.0.0.1, driven from Python by tests and by `ocr-poller emulator`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ocr_poller_tools.emulator.api import EmulatedApi, Reply
from ocr_poller_tools.emulator.faults import Fault, FaultKind, make_fault

MAX_BODY_BYTES = 256 * 1024 * 1024
SHUTDOWN_POLL_SECONDS = 0.05  # how soon `stop()` returns; serve_forever's default (0.5 s) slows every test


class Emulator:
    """An Aspose.OCR Cloud v5 API emulator, bound on creation, serving after `start` or `serve_forever`."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        processing_seconds: float = 3.0,
        client_id: str | None = None,
        client_secret: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        log_requests: bool = True,
    ) -> None:
        self._host = host
        self._api = EmulatedApi(
            processing_seconds=processing_seconds,
            client_id=client_id,
            client_secret=client_secret,
            clock=clock,
        )
        self._stopping = threading.Event()
        self._server = _Server((host, port), self._api, self._stopping, log_requests)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The API origin, e.g. http://127.0.0.1:8080."""
        return f"http://{self._host}:{self._server.server_port}"

    def start(self) -> Emulator:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(SHUTDOWN_POLL_SECONDS,), name="ocr-emulator", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted."""
        self._server.serve_forever()

    def stop(self) -> None:
        """Stop serving, cut short any latency or hanging connection, and free the port."""
        self._stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def submit(
        self, endpoint: str, body: dict[str, Any], fault: Fault | Sequence[Fault] | None = None
    ) -> str:
        """Queue a task as `POST /v5.0/ocr/{endpoint}` does, with faults for its first checks; its id."""
        faults = [fault] if isinstance(fault, Fault) else list(fault or ())
        return self._api.submit(endpoint, body, faults)

    def inject(self, task_id: str, kind: FaultKind | str, **params: object) -> None:
        """Queue a fault for the task's next status checks, e.g. `inject(id, "throttle", retry_after=5)`."""
        self._api.inject(task_id, make_fault(kind, **params))

    def checks(self, task_id: str) -> int:
        """How many status checks (GETs) named this task id so far."""
        return self._api.checks(task_id)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def main_emulator(
    port: int, processing_seconds: float, client_id: str | None, client_secret: str | None
) -> None:
    """Serve the emulator on 127.0.0.1:`port` until interrupted (port 0: any free port)."""
    emulator = Emulator(
        port=port, processing_seconds=processing_seconds, client_id=client_id, client_secret=client_secret
    )
    # The address goes to stdout, request logs to stderr: a script can read the one line it needs.
    print(f"ocr-poller emulator serving on {emulator.url}", flush=True)
    try:
        emulator.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], api: EmulatedApi, stopping: threading.Event, log_requests: bool
    ) -> None:
        super().__init__(address, _Handler)
        self.api = api
        self.stopping = stopping
        self.log_requests = log_requests


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: with Nagle on, keep-alive answers wait for a delayed ACK.
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        """Answer a GET."""
        self._respond()

    def do_POST(self) -> None:
        """Answer a POST."""
        self._respond()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """One line per request; only the task id of the query, so nothing secret reaches the log."""
        if not self.server.log_requests:
            return
        url = urlsplit(self.path)
        task_id = parse_qs(url.query).get("id")
        self.log_message("%s %s%s %s", self.command, url.path, f"?id={task_id[0]}" if task_id else "", code)

    def _respond(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True
            self._send(Reply(413 if length > MAX_BODY_BYTES else 400))
            return
        body = self.rfile.read(length)
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = self.server.api.handle(self.command, self.path, headers, body)
        if reply.delay:
            self.server.stopping.wait(reply.delay)
        if reply.hang_up:
            self.close_connection = True
            self.log_request("hung up")
            return
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        try:
            self.send_response(reply.status)
            if reply.content_type is not None:
                self.send_header("Content-Type", reply.content_type)
            for name, value in reply.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(reply.length))
            self.end_headers()
            for chunk in reply.chunks:
                self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (its own timeout, say): nothing left to answer.
            self.close_connection = True
