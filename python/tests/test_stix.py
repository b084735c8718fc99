"""format="stix": bundles held to OASIS's validator (stix2-validator) and to the stix2
library's parser with custom content disallowed, as the Rust suite holds them; the TLP
marking; the warnings a bundle cannot carry, as Python warnings."""

from __future__ import annotations

import json
import re
import warnings

import pytest
import spycloud_relay
from conftest import API_KEY, catalog, record, required_in_ci

try:
    import stix2
    from stix2validator import ValidationOptions, validate_instance
except ImportError:  # pragma: no cover - the tools' environment has them
    stix2 = None

# The validator's warnings the relay's bundles may draw (tests/common/stix.rs): {103} ids are
# deterministic UUIDv5, not UUIDv4; {302} a portal link is a web page, without a hash.
ALLOWED_WARNINGS = {"103", "302"}

PAT = "pat@example.com"


def assert_valid_stix(bundle: dict) -> None:
    if stix2 is None:
        required_in_ci("stix2 and stix2-validator (.ci/python-env)")
    result = validate_instance(bundle, ValidationOptions(strict=False))
    assert not result.errors, [str(e) for e in result.errors]
    codes = {(re.search(r"\{(\d+)\}", str(w)) or [None, ""])[1] for w in result.warnings}
    assert codes <= ALLOWED_WARNINGS, [str(w) for w in result.warnings]
    assert result.is_valid
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stix2.parse(json.dumps(bundle), allow_custom=False)


def test_a_lookup_renders_a_valid_stix_bundle(spycloud, client):
    spycloud.add("emails", PAT, [record(PAT, n, source_id=7 + n % 2) for n in range(4)])
    spycloud.add("domains", "acme.test", [record("lee@acme.test", 1, source_id=7)])
    spycloud.catalogs.update({7: catalog(7), 8: catalog(8)})

    bundle = client.lookup([PAT, "acme.test"], format="stix")

    assert bundle["type"] == "bundle"
    kinds = [o["type"] for o in bundle["objects"]]
    assert kinds.count("incident") == 5
    assert_valid_stix(bundle)


def test_the_tlp_marks_the_bundle(spycloud):
    spycloud.add("emails", PAT, [record(PAT, 1)])
    spycloud.catalogs[7] = catalog(7)
    client = spycloud_relay.Client(API_KEY, api_url=spycloud.url, tlp="red", retries=0)
    bundle = client.lookup(PAT, format="stix")
    markings = [o for o in bundle["objects"] if o["type"] == "marking-definition"]
    assert [m["name"] for m in markings] == ["TLP:RED"]
    assert_valid_stix(bundle)
    default = spycloud_relay.render([record(PAT, 1)], [catalog(7)], PAT, format="stix")
    assert "TLP:AMBER" in [o.get("name") for o in default["objects"]]


def test_render_and_lookup_give_the_same_bundle(spycloud, client):
    # STIX ids are deterministic: the same data is the same bundle, byte for byte.
    spycloud.add("emails", PAT, [record(PAT, 1), record(PAT, 2, source_id=8)])
    spycloud.catalogs.update({7: catalog(7), 8: catalog(8)})
    rendered = spycloud_relay.render(
        [record(PAT, 1), record(PAT, 2, source_id=8)], [catalog(7), catalog(8)], PAT, format="stix"
    )
    assert rendered == client.lookup(PAT, format="stix")
    assert_valid_stix(rendered)


# RULES R50
def test_warnings_a_bundle_cannot_carry_are_python_warnings(spycloud):
    spycloud.page_size = 10
    spycloud.add("emails", PAT, [record(PAT, n) for n in range(30)])
    spycloud.catalogs[7] = catalog(7)
    client = spycloud_relay.Client(API_KEY, api_url=spycloud.url, max_records=10, retries=0)
    with pytest.warns(spycloud_relay.SpyCloudRelayWarning, match="SpyCloud holds 30 records"):
        bundle = client.lookup(PAT, format="stix")
    assert_valid_stix(bundle)


# RULES R51
def test_a_bad_tlp_is_a_value_error():
    with pytest.raises(ValueError):
        spycloud_relay.Client(API_KEY, tlp="clear")
    with pytest.raises(ValueError):
        spycloud_relay.render([], [], PAT, tlp="purple")
