"""One client shared by several Python threads; the GIL released while a lookup waits."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import spycloud_relay
from conftest import API_KEY, catalog, record


# RULES R52
def test_one_client_serves_several_threads(spycloud, client):
    emails = [f"user{n}@example.com" for n in range(16)]
    for n, email in enumerate(emails):
        spycloud.add("emails", email, [record(email, i) for i in range(n + 1)])
    spycloud.catalogs[7] = catalog(7)

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda email: client.lookup(email), emails))

    for n, (email, answer) in enumerate(zip(emails, answers)):
        sightings = answer["data"]["sightings"]["docs"]
        assert len(sightings) == n + 1
        assert {s["observables"][0]["value"] for s in sightings} == {email}


# RULES R52
def test_the_gil_is_released_while_spycloud_is_awaited(spycloud):
    # The fake SpyCloud is Python threads of this very process: were the GIL held while the
    # lookup waits, it could not answer, and the lookup would end at its deadline instead.
    spycloud.delay = 0.2
    spycloud.add("emails", "pat@example.com", [record("pat@example.com", 1)])
    client = spycloud_relay.Client(API_KEY, api_url=spycloud.url, deadline=5, retries=0)
    ticks = 0
    stop = threading.Event()

    def tick():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            stop.wait(0.01)

    ticker = threading.Thread(target=tick)
    ticker.start()
    try:
        answer = client.lookup("pat@example.com")
    finally:
        stop.set()
        ticker.join()
    assert answer["data"]["sightings"]["count"] == 1
    assert ticks > 1


# RULES R52
def test_clients_are_independent(spycloud):
    # Each client has its own runtime: one closed (collected) leaves the other working.
    spycloud.add("emails", "pat@example.com", [record("pat@example.com", 1)])
    first = spycloud_relay.Client(API_KEY, api_url=spycloud.url, retries=0)
    second = spycloud_relay.Client(API_KEY, api_url=spycloud.url, retries=0)
    first.lookup("pat@example.com")
    del first
    assert second.lookup("pat@example.com")["data"]["sightings"]["count"] == 1
