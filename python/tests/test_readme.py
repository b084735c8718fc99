"""The Python examples of python/README.md and of the README's Python section run, in order,
against the fake SpyCloud (each client made by them is pointed at it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import spycloud_relay
from conftest import API_KEY, catalog, record

ROOT = Path(__file__).resolve().parents[2]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.parametrize("page", ["python/README.md", "README.md"])
def test_the_readme_examples_run(spycloud, monkeypatch, page):
    blocks = python_blocks(ROOT / page)
    assert blocks, f"no Python example in {page}"
    spycloud.add("emails", "jane@acme.test", [record("jane@acme.test", 1)])
    spycloud.catalogs[7] = catalog(7)
    real = spycloud_relay.Client

    def client(*args, **kwargs):
        return real(*args, **{**kwargs, "api_url": spycloud.url})

    monkeypatch.setattr(spycloud_relay, "Client", client)
    namespace = {
        "KEY": API_KEY,
        "records": [record("jane@acme.test", 1)],
        "catalogs": [catalog(7)],
    }
    for block in blocks:
        exec(compile(block, page, "exec"), namespace)
    bundle = namespace["bundle"]
    if bundle.get("type") == "bundle":  # STIX
        assert [o["type"] for o in bundle["objects"]].count("incident") == 1
    else:
        assert bundle["data"]["sightings"]["count"] == 1
