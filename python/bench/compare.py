"""Side by side: the package's lookup and a plain `requests` client, against a fake SpyCloud
that answers every call after 50 ms.

The lookup: 5 emails, 20 breach records each, over 8 distinct catalogs. The plain client does
what SpyCloud's own XSOAR integration does (read, not copied): one `requests` session, the
values one after another, every page by `cursor`, then one catalog call per record
(`breach/catalog/<source_id>`, no cache); it renders nothing. The package runs its real pipeline
(rate limit, 100 calls a second here; catalogs batched and cached) and renders CTIM, with a new
client each round (its runtime, connection pool and empty catalog cache: the creation counts),
and with one client kept across rounds. Wall time and CPU (this process's, every thread's) are
the median of the rounds, SpyCloud calls those of the last round.

    .ci/python-env                                      # the tools' environment
    target/python-env/bin/python -m maturin build --release -m python/Cargo.toml -o target/wheels
    target/python-env/bin/python -m pip install --force-reinstall target/wheels/spycloud_relay-*.whl
    target/python-env/bin/python python/bench/compare.py [--rounds 5] [--delay 0.05] [--page-size 100]

The fake runs in a child process, so its CPU is not counted.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import requests
import spycloud_relay

API_KEY = "bench-api-key"
EMAILS = [f"employee{n}@acme.test" for n in range(5)]
RECORDS_PER_EMAIL = 20
CATALOGS = 8
# The package's rate limit: at the default 10 calls a second, rounds run back to back would
# wait for it (5 calls a round); the plain client has none.
MAX_RPS = 100


def records(email: str) -> list[dict]:
    return [
        {
            "document_id": f"{email}-{n}",
            "source_id": 1000 + (n + len(email)) % CATALOGS,
            "email": email,
            "severity": 20 if n % 3 else 25,
            "password": f"secret-{n}",
            "ip_addresses": ["203.0.113.7"],
            "spycloud_publish_date": f"2024-05-{1 + n:02d}T00:00:00Z",
        }
        for n in range(RECORDS_PER_EMAIL)
    ]


def catalog(cid: int) -> dict:
    return {
        "id": cid,
        "uuid": f"00000000-0000-0000-0000-{cid:012d}",
        "title": f"Breach {cid}",
        "description": "A breach.",
        "site": f"site{cid}.example",
        "confidence": 2,
        "spycloud_publish_date": "2024-01-01T00:00:00Z",
    }


def fake_spycloud(port, calls, delay: float, page_size: int) -> None:
    data = {email: records(email) for email in EMAILS}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self) -> None:  # noqa: N802
            with calls.get_lock():
                calls.value += 1
            time.sleep(delay)
            url = urlsplit(self.path)
            parts = [unquote(p) for p in url.path.strip("/").split("/")]
            if parts[:2] == ["breach", "data"]:
                found = data.get(parts[3], [])
                start = int(parse_qs(url.query).get("cursor", ["0"])[0])
                page = found[start : start + page_size]
                after = start + len(page)
                body = {"cursor": str(after) if after < len(found) else "", "hits": len(found), "results": page}
            else:
                ids = [int(i) for i in parts[2].split(",")]
                body = {"cursor": "", "hits": len(ids), "results": [catalog(i) for i in ids]}
            text = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port.value = server.server_address[1]
    server.serve_forever()


def plain_requests(base: str) -> dict:
    """What SpyCloud's XSOAR integration does: pages one after another, then a catalog call
    per record."""
    session = requests.Session()
    session.headers.update({"X-API-Key": API_KEY, "Accept": "application/json"})
    found = {}
    for email in EMAILS:
        results, cursor = [], None
        while True:
            params = {"cursor": cursor} if cursor else {}
            answer = session.get(f"{base}/breach/data/emails/{email}", params=params, timeout=10)
            answer.raise_for_status()
            page = answer.json()
            results.extend(page.get("results", []))
            cursor = page.get("cursor")
            if not cursor:
                break
        for item in results:
            catalogs = session.get(f"{base}/breach/catalog/{item['source_id']}", timeout=10)
            catalogs.raise_for_status()
            listed = catalogs.json().get("results", [])
            item["breach_title"] = listed[0].get("title") if listed else ""
        found[email] = results
    return found


def package(base: str) -> dict:
    """A new client (its runtime, connection pool and catalog cache), then the lookup."""
    client = spycloud_relay.Client(API_KEY, api_url=base, max_rps=MAX_RPS)
    return client.lookup(EMAILS, format="ctim")


def kept_client(base: str):
    """One client kept across rounds: after the first, its connections and catalogs are warm."""
    client = spycloud_relay.Client(API_KEY, api_url=base, max_rps=MAX_RPS)
    client.lookup(EMAILS)
    return lambda _base: client.lookup(EMAILS, format="ctim")


def measure(name: str, run, base: str, calls, rounds: int) -> dict:
    walls, cpus, counts = [], [], []
    for _ in range(rounds):
        with calls.get_lock():
            calls.value = 0
        wall, cpu = time.perf_counter(), time.process_time()
        result = run(base)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        counts.append(calls.value)
    return {
        "client": name,
        "wall_ms": round(statistics.median(walls) * 1000, 1),
        "cpu_ms": round(statistics.median(cpus) * 1000, 1),
        "spycloud_calls": counts[-1],
        "result": result,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--delay", type=float, default=0.05, help="seconds per SpyCloud answer")
    parser.add_argument("--page-size", type=int, default=100, help="records per page")
    args = parser.parse_args()

    port = multiprocessing.Value("i", 0)
    calls = multiprocessing.Value("i", 0)
    fake = multiprocessing.Process(target=fake_spycloud, args=(port, calls, args.delay, args.page_size), daemon=True)
    fake.start()
    try:
        while not port.value:
            time.sleep(0.01)
        base = f"http://127.0.0.1:{port.value}"
        ours = measure("spycloud_relay, a new client", package, base, calls, args.rounds)
        warm = measure("spycloud_relay, a kept client", kept_client(base), base, calls, args.rounds)
        plain = measure("requests, as the XSOAR integration", plain_requests, base, calls, args.rounds)
    finally:
        fake.terminate()
        fake.join()

    sightings = ours.pop("result")["data"]["sightings"]["count"]
    assert warm.pop("result")["data"]["sightings"]["count"] == sightings
    read = sum(len(found) for found in plain.pop("result").values())
    assert sightings == read == len(EMAILS) * RECORDS_PER_EMAIL, (sightings, read)
    print(f"{len(EMAILS)} emails x {RECORDS_PER_EMAIL} records over {CATALOGS} catalogs, "
          f"{args.delay * 1000:.0f} ms per SpyCloud answer, median of {args.rounds} rounds")
    print(f"{'client':40} {'wall ms':>9} {'CPU ms':>8} {'calls':>6}")
    for row in (ours, warm, plain):
        print(f"{row['client']:40} {row['wall_ms']:>9} {row['cpu_ms']:>8} {row['spycloud_calls']:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
