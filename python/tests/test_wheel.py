"""The wheel maturin builds, installed in a fresh virtual environment with nothing else,
imports and works: what `pip install` of the package gives on a new machine.

The wheel is `SPYCLOUD_RELAY_WHEEL` (a file, or a folder holding one), as `.ci/run` sets it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import required_in_ci

CHECK = textwrap.dedent(
    """
    import json, pathlib, sys
    import spycloud_relay
    package = pathlib.Path(spycloud_relay.__file__).parent
    assert (package / "py.typed").exists() and (package / "__init__.pyi").exists()
    record = {"source_id": 7, "email": "pat@example.com",
              "spycloud_publish_date": "2024-03-01T00:00:00Z"}
    catalog = {"id": 7, "title": "Example Forum"}
    answer = spycloud_relay.render([record], [catalog], "pat@example.com")
    client = spycloud_relay.Client("a key", api_url="http://127.0.0.1:9", retries=0)
    try:
        client.lookup("pat@example.com")
    except spycloud_relay.UpstreamError as error:
        failed = error.code
    print(json.dumps([spycloud_relay.__version__, answer["data"]["sightings"]["count"], failed]))
    """
)


def wheel() -> Path:
    given = os.environ.get("SPYCLOUD_RELAY_WHEEL")
    if not given:
        required_in_ci("SPYCLOUD_RELAY_WHEEL (the wheel maturin built)")
    path = Path(given)
    if path.is_dir():
        found = sorted(path.glob("spycloud_relay-*.whl"))
        assert len(found) == 1, f"one wheel expected in {path}, found {found}"
        path = found[0]
    assert path.is_file(), path
    return path


def test_the_wheel_installs_and_imports_in_a_fresh_virtual_environment(tmp_path):
    built = wheel()
    env = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    python = env / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-index",
         "--disable-pip-version-check", str(built)],
        check=True,
    )
    ran = subprocess.run(
        [str(python), "-c", CHECK], check=True, capture_output=True, text=True, cwd=tmp_path
    )
    version, sightings, failed = __import__("json").loads(ran.stdout)
    assert version == "0.2.0"
    assert sightings == 1
    assert failed == "unknown"
