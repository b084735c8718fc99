"""A fake SpyCloud Enterprise API on a loopback port, for the package's tests.

It serves what the relay's client asks for: breach data per type and value (paged with
`cursor`), catalogs by comma-separated ids, and the watchlist probe of the health check. Each
test gives it records and catalogs, or a failure to answer with, and reads back the calls it
received (path, query, API key).
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

API_KEY = "test-api-key"


@dataclass
class Call:
    path: str
    query: dict
    api_key: str | None


@dataclass
class Failure:
    status: int
    headers: dict = field(default_factory=dict)
    body: str = ""
    # how many calls get it (None: every call)
    times: int | None = None


class FakeSpyCloud:
    """What the fake knows and what it was asked."""

    def __init__(self) -> None:
        # (endpoint, value) -> records, e.g. ("emails", "pat@example.com") -> [...]
        self.records: dict[tuple[str, str], list[dict]] = {}
        self.catalogs: dict[int, dict] = {}
        self.page_size = 100
        # path prefix -> the failure every call under it gets
        self.failures: dict[str, Failure] = {}
        # seconds each answer waits before it is sent
        self.delay = 0.0
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self.url = ""

    def add(self, endpoint: str, value: str, records: list[dict]) -> None:
        self.records.setdefault((endpoint, value), []).extend(records)

    def fail(
        self,
        prefix: str,
        status: int,
        headers: dict | None = None,
        body: str = "",
        times: int | None = None,
    ) -> None:
        self.failures[prefix] = Failure(status, headers or {}, body, times)

    def calls_to(self, prefix: str) -> list[Call]:
        with self._lock:
            return [call for call in self.calls if call.path.startswith(prefix)]

    def answer(self, path: str, query: dict, api_key: str | None):
        with self._lock:
            self.calls.append(Call(path, query, api_key))
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            for prefix, failure in self.failures.items():
                if path.startswith(prefix) and failure.times != 0:
                    if failure.times is not None:
                        failure.times -= 1
                    return failure.status, failure.headers, failure.body
        if api_key != API_KEY:
            return 401, {}, json.dumps({"message": "Unauthorized"})
        parts = [unquote(part) for part in path.strip("/").split("/")]
        if parts[:2] == ["breach", "data"] and len(parts) == 4:
            records = self.records.get((parts[2], parts[3]), [])
            start = int(query.get("cursor", ["0"])[0])
            page = records[start : start + self.page_size]
            after = start + len(page)
            cursor = str(after) if after < len(records) else ""
            return 200, {}, json.dumps({"cursor": cursor, "hits": len(records), "results": page})
        if parts[:2] == ["breach", "catalog"] and len(parts) == 3:
            ids = [int(i) for i in parts[2].split(",") if i.isdigit()]
            found = [self.catalogs[i] for i in ids if i in self.catalogs]
            return 200, {}, json.dumps({"cursor": "", "hits": len(found), "results": found})
        if parts[:1] == ["watchlist"]:
            return 200, {}, json.dumps({"cursor": "", "hits": 0, "results": []})
        return 404, {}, json.dumps({"message": "Not Found"})


def serve(fake: FakeSpyCloud):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            url = urlsplit(self.path)
            status, headers, body = fake.answer(
                url.path, parse_qs(url.query), self.headers.get("X-API-Key")
            )
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    return server


@pytest.fixture
def spycloud():
    fake = FakeSpyCloud()
    server = serve(fake)
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def client(spycloud):
    import spycloud_relay

    return spycloud_relay.Client(API_KEY, api_url=spycloud.url, max_rps=1000, retries=0)


def record(email: str, n: int, source_id: int = 7, **fields) -> dict:
    """A breach record of `email`, the `n`th (its publish date counts days back from 2024-06-01)."""
    day = 1 + n % 28
    month = 6 - (n // 28) % 5
    base = {
        "document_id": f"doc-{email}-{n}",
        "source_id": source_id,
        "email": email,
        "severity": 20,
        "password": "hunter22",
        "password_plaintext": "hunter22",
        "spycloud_publish_date": f"2024-{month:02d}-{day:02d}T00:00:00Z",
    }
    base.update(fields)
    return base


def catalog(cid: int, **fields) -> dict:
    base = {
        "id": cid,
        "uuid": f"00000000-0000-0000-0000-{cid:012d}",
        "title": f"Breach {cid}",
        "description": f"The breach of site {cid}.",
        "site": f"site{cid}.example",
        "confidence": 3,
        "spycloud_publish_date": "2024-01-01T00:00:00Z",
    }
    base.update(fields)
    return base


def required_in_ci(what: str) -> None:
    """Skips locally when `what` is missing; under CI (RELAY_TEST_PYTHON set) fails instead."""
    if os.environ.get("RELAY_TEST_PYTHON") or os.environ.get("CI"):
        pytest.fail(f"{what} is required under CI")
    pytest.skip(f"{what} is not available")
