"""A scripted stand-in for the Aspose API on 127.0.0.1 that answers whatever the test says, however hostile.

Each route answers with a `Reply`, a function that writes the whole HTTP answer: valid JSON of any size,
a body that trickles a byte at a time or never ends, a token that is not one. Replies are written by
the server's threads as the client reads them, so a body of megabytes is never held whole. Every
streaming reply stops when the client closes the connection or the server stops.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Reply = Callable[["_Handler"], None]


class HostileApi:
    """The token endpoint and the result endpoints of Aspose.OCR v5, answering from a script."""

    def __init__(self) -> None:
        self.token: Reply = token_reply("hostile-test-token")
        self.answers: dict[str, list[Reply]] = {}  # by task id: one reply per check, the last one repeated
        self.default: Reply = json_reply({"taskStatus": "Pending", "results": None, "error": None})
        self.checks: Counter[str] = Counter()
        self.token_requests = 0
        self.streams_open = 0  # streaming replies still writing
        self.streams_cut = 0  # streaming replies the client stopped reading
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.api = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def answer(self, task_id: str, *replies: Reply) -> None:
        """Answer the checks of `task_id` with these replies in turn, the last one from then on."""
        self.answers[task_id] = list(replies)

    def __enter__(self) -> HostileApi:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def _reply_for(self, task_id: str) -> Reply:
        with self._lock:
            self.checks[task_id] += 1
            script = self.answers.get(task_id)
            if not script:
                return self.default
            return script.pop(0) if len(script) > 1 else script[0]

    def _count(self, name: str, delta: int) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + delta)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ThreadingHTTPServer

    @property
    def api(self) -> HostileApi:
        api: HostileApi = self.server.api  # type: ignore[attr-defined]
        return api

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if urlsplit(self.path).path == "/connect/token":
            self.api._count("token_requests", 1)
            self.api.token(self)
        else:
            json_reply({"error": "not scripted"}, status=404)(self)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        task_id = parse_qs(urlsplit(self.path).query).get("id", [""])[0]
        self.api._reply_for(task_id)(self)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        """Quiet: the tests read the end state, not the server's log."""


def raw_reply(status: int, body: bytes, headers: dict[str, str] | None = None) -> Reply:
    """An answer with this status and body, its length announced."""

    def reply(handler: _Handler) -> None:
        handler.send_response(status)
        for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return reply


def json_reply(document: Any, status: int = 200) -> Reply:
    return raw_reply(status, json.dumps(document).encode())


def token_reply(access_token: Any, **extra: Any) -> Reply:
    return json_reply({"access_token": access_token, "token_type": "Bearer", **extra})


def streamed_reply(pieces: Callable[[], Iterable[bytes]], *, pause: float = 0.0) -> Reply:
    """An answer whose body is written piece by piece (`pause` seconds apart) until the pieces end, the
    client closes the connection, or the server stops; no length is announced, the end is the close."""

    def reply(handler: _Handler) -> None:
        api = handler.api
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.close_connection = True
        api._count("streams_open", 1)
        try:
            for piece in pieces():
                if api.stopping.is_set():
                    return
                handler.wfile.write(piece)
                handler.wfile.flush()
                if pause:
                    time.sleep(pause)
        except OSError:  # the client stopped reading and closed: what a deadline does
            api._count("streams_cut", 1)
        finally:
            api._count("streams_open", -1)

    return reply


def trickle(prefix: bytes) -> Callable[[], Iterator[bytes]]:
    """The prefix, then one space at a time for ever: valid JSON whitespace that never completes."""

    def pieces() -> Iterator[bytes]:
        yield prefix
        while True:
            yield b" "

    return pieces


def endless(prefix: bytes, filler: bytes) -> Callable[[], Iterator[bytes]]:
    """The prefix, then the filler again and again, as fast as the client reads."""

    def pieces() -> Iterator[bytes]:
        yield prefix
        while True:
            yield filler

    return pieces
