"""The package answers what `spycloud-relay lookup` answers for the same fake SpyCloud, in
CTIM and in STIX: one pipeline, one mapping, two front ends.

The binary is `SPYCLOUD_RELAY_BIN`, else the debug build `cargo test` leaves in target/."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import API_KEY, catalog, record, required_in_ci
from ctim_rules import stable

ROOT = Path(__file__).resolve().parents[2]
PAT = "pat@example.com"


def binary() -> Path:
    path = Path(os.environ.get("SPYCLOUD_RELAY_BIN") or ROOT / "target/debug/spycloud-relay")
    if not path.is_file():
        required_in_ci(f"the spycloud-relay binary ({path})")
    return path


# RULES R50
@pytest.mark.parametrize("format", ["ctim", "stix"])
def test_the_package_answers_what_the_lookup_command_answers(spycloud, client, format):
    spycloud.add("emails", PAT, [record(PAT, n, source_id=7 + n % 3) for n in range(5)])
    spycloud.add("domains", "acme.test", [record("lee@acme.test", 1, source_id=7)])
    spycloud.catalogs.update({7: catalog(7), 8: catalog(8)})  # 9 is missing: a warning
    values = [PAT, "acme.test", "203.0.113.7"]

    ran = subprocess.run(
        [str(binary()), "lookup", "--api-url", spycloud.url, "--format", format, *values],
        env={**os.environ, "SPYCLOUD_API_KEY": API_KEY},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    command = json.loads(ran.stdout)

    if format == "stix":
        assert client.lookup(values, format=format) == command
    else:
        assert stable(client.lookup(values, format=format)) == stable(command)
