"""Client.lookup against the fake SpyCloud: paging, catalog batches, typing, the module
settings, the password policy, the formats, and CTIM held to the Rust suite's rules."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
import spycloud_relay
from conftest import API_KEY, catalog, record
from ctim_rules import assert_valid, problems

PAT = "pat@example.com"


def test_every_page_is_read_by_cursor(spycloud, client):
    spycloud.page_size = 100
    spycloud.add("emails", PAT, [record(PAT, n) for n in range(250)])
    spycloud.catalogs[7] = catalog(7)

    answer = client.lookup([PAT], limit=1000)

    assert answer["data"]["sightings"]["count"] == 250
    pages = spycloud.calls_to("/breach/data/emails/")
    assert [call.query.get("cursor") for call in pages] == [None, ["100"], ["200"]]
    assert all(call.api_key == API_KEY for call in spycloud.calls)
    assert_valid(answer)


def test_catalogs_are_fetched_once_each_in_batches_of_ten(spycloud, client):
    spycloud.add("emails", PAT, [record(PAT, n, source_id=100 + n % 25) for n in range(75)])
    for cid in range(100, 125):
        spycloud.catalogs[cid] = catalog(cid)

    answer = client.lookup(PAT)

    catalog_calls = spycloud.calls_to("/breach/catalog/")
    asked = [int(i) for call in catalog_calls for i in call.path.rsplit("/", 1)[1].split(",")]
    assert len(catalog_calls) == 3
    assert sorted(asked) == list(range(100, 125))
    assert answer["data"]["indicators"]["count"] == 25
    assert answer["data"]["relationships"]["count"] == 75
    assert_valid(answer)


def test_the_same_catalog_is_cached_across_lookups(spycloud, client):
    spycloud.add("emails", PAT, [record(PAT, 1)])
    spycloud.catalogs[7] = catalog(7)
    client.lookup(PAT)
    client.lookup(PAT)
    assert len(spycloud.calls_to("/breach/catalog/")) == 1


# RULES R48
def test_values_are_typed_by_their_form_or_by_types(spycloud, client):
    client.lookup(["pat@example.com", "acme.test", "203.0.113.7", "2001:db8::1"])
    client.lookup(["jdoe"], types="user")
    client.lookup([{"type": "domain", "value": "example.org"}])
    asked = sorted(unquote(call.path) for call in spycloud.calls_to("/breach/data/"))
    assert asked == sorted(
        [
            "/breach/data/emails/pat@example.com",
            "/breach/data/domains/acme.test",
            "/breach/data/ips/203.0.113.7",
            "/breach/data/ips/2001:db8::1",
            "/breach/data/usernames/jdoe",
            "/breach/data/domains/example.org",
        ]
    )


def test_limit_keeps_the_newest_records(spycloud, client):
    spycloud.add("emails", PAT, [record(PAT, n) for n in range(30)])
    answer = client.lookup(PAT, limit=5, format="findings")
    records = answer["observables"][0]["records"]
    assert len(records) == 5
    dates = [r["spycloud_publish_date"] for r in records]
    assert dates == sorted(dates, reverse=True)


def test_severity_and_since_days_are_asked_of_spycloud(spycloud):
    client = spycloud_relay.Client(
        API_KEY, api_url=spycloud.url, severity=[20, 25], since_days=30, retries=0
    )
    client.lookup(PAT)
    (call,) = spycloud.calls_to("/breach/data/")
    assert call.query["severity"] == ["20,25"]
    assert len(call.query["since"][0]) == len("2024-01-01")


def test_max_records_cuts_the_reading_with_a_warning(spycloud):
    spycloud.page_size = 10
    spycloud.add("emails", PAT, [record(PAT, n) for n in range(50)])
    spycloud.catalogs[7] = catalog(7)
    client = spycloud_relay.Client(API_KEY, api_url=spycloud.url, max_records=20, retries=0)
    answer = client.lookup(PAT)
    assert len(spycloud.calls_to("/breach/data/")) == 2
    assert [e["code"] for e in answer["errors"]] == ["too many results"]


def sighting_table(answer: dict) -> dict:
    data = answer["data"]["sightings"]["docs"][0]["data"]
    return dict(zip((c["name"] for c in data["columns"]), data["rows"][0]))


# RULES R50
@pytest.mark.parametrize(
    ("policy", "shown"),
    [("plaintext", "hunter22"), ("masked", "hu******"), ("omitted", None)],
)
def test_the_password_policy_applies_to_ctim_and_findings(spycloud, policy, shown):
    spycloud.add("emails", PAT, [record(PAT, 1, salt="NaCl")])
    spycloud.catalogs[7] = catalog(7)
    client = spycloud_relay.Client(API_KEY, api_url=spycloud.url, passwords=policy, retries=0)

    table = sighting_table(client.lookup(PAT))
    found = client.lookup(PAT, format="findings")["observables"][0]["records"][0]

    for secret in ("password", "password_plaintext"):
        assert table.get(secret) == shown
        assert found.get(secret) == shown
        assert (secret in table) == (shown is not None)
        assert (secret in found) == (shown is not None)
    assert table["email"] == found["email"] == PAT


# RULES R50
def test_findings_hold_records_catalogs_and_warnings(spycloud, client):
    spycloud.add("emails", PAT, [record(PAT, 1, source_id=7), record(PAT, 2, source_id=8)])
    spycloud.catalogs[7] = catalog(7)

    answer = client.lookup(PAT, format="findings")

    assert answer["warnings"] == []
    (found,) = answer["observables"]
    assert found["observable"] == {"value": PAT, "type": "email"}
    assert {r["source_id"] for r in found["records"]} == {7, 8}
    assert [c["id"] for c in found["catalogs"]] == [7]
    assert found["catalogs"][0]["title"] == "Breach 7"
    assert found["warnings"] == []


def test_ctim_is_the_relays_securex_answer(spycloud, client):
    spycloud.add("emails", PAT, [record(PAT, 1, source_id=7), record(PAT, 2, source_id=99)])
    spycloud.add("domains", "acme.test", [record("lee@acme.test", 3, source_id=7)])
    spycloud.catalogs[7] = catalog(7)

    answer = client.lookup([PAT, "acme.test"])

    assert_valid(answer)
    data = answer["data"]
    assert data["sightings"]["count"] == 3
    # One indicator per catalog of the whole answer; the missing one is a warning.
    assert data["indicators"]["count"] == 1
    assert data["relationships"]["count"] == 2
    assert answer["errors"] == [
        {
            "type": "warning",
            "code": "not found",
            "message": "SpyCloud did not return results for 99",
        }
    ]
    assert data["indicators"]["docs"][0]["title"] == "Breach 7"
    assert {s["severity"] for s in data["sightings"]["docs"]} == {"High"}


def test_the_ctim_rules_catch_a_broken_answer():
    # The checker itself: a dangling relationship and a miscounted list are found.
    broken = {
        "data": {
            "sightings": {"count": 2, "docs": [{"id": "s1", "confidence": "High", "severity": "High"}]},
            "relationships": {"count": 1, "docs": [{"id": "r1", "source_ref": "s1", "target_ref": "i9"}]},
        }
    }
    assert len(problems(broken)) == 2


def test_nothing_found_is_an_empty_answer(spycloud, client):
    assert client.lookup(PAT) == {"data": {}}
    assert client.lookup(PAT, format="findings")["observables"][0]["records"] == []
