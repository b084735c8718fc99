"""The CTIM rules the Rust suite holds every answer to (tests/common/ctim.rs), in Python:
counts match their docs, ids are unique in an answer, relationships resolve, vocabularies and
string limits hold, data rows fit their columns."""

from __future__ import annotations

HIGH_MED_LOW = {"Info", "Low", "Medium", "High", "None", "Unknown"}
SEVERITY = {"Info", "Low", "Medium", "High", "Critical", "None", "Unknown"}
OBSERVABLE_TYPES = {"email", "domain", "ip", "ipv6", "user", "hostname", "mac_address"}
LIMITS = {"title": 1024, "short_description": 2048, "description": 5000}


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def problems(answer: dict) -> list[str]:
    found: list[str] = []
    data = answer.get("data", {})

    def docs(key: str) -> list:
        if key not in data:
            return []
        listed = data[key].get("docs") or []
        if not listed:
            found.append(f"{key}: present but without docs")
        if data[key].get("count") != len(listed):
            found.append(f"{key}: count {data[key].get('count')} for {len(listed)} docs")
        return listed

    sightings, indicators, relationships = docs("sightings"), docs("indicators"), docs("relationships")
    seen: set[str] = set()
    for doc in sightings + indicators + relationships:
        doc_id = doc.get("id")
        if not doc_id:
            found.append(f"a document without an id: {doc}")
        elif doc_id in seen:
            found.append(f"id {doc_id} twice in one answer")
        seen.add(doc_id)
        for name, limit in LIMITS.items():
            if isinstance(doc.get(name), str) and utf16_units(doc[name]) > limit:
                found.append(f"{name} over {limit} UTF-16 code units")
    sighting_ids = {s["id"] for s in sightings}
    indicator_ids = {i["id"] for i in indicators}
    for relationship in relationships:
        if relationship.get("source_ref") not in sighting_ids:
            found.append(f"relationship {relationship['id']}: source_ref resolves to nothing")
        if relationship.get("target_ref") not in indicator_ids:
            found.append(f"relationship {relationship['id']}: target_ref resolves to nothing")
    for sighting in sightings:
        if sighting.get("confidence") not in HIGH_MED_LOW:
            found.append(f"sighting confidence {sighting.get('confidence')}")
        if sighting.get("severity") not in SEVERITY:
            found.append(f"sighting severity {sighting.get('severity')}")
        observables = list(sighting.get("observables", []))
        for target in sighting.get("targets", []):
            observables += target.get("observables", [])
        for relation in sighting.get("relations", []):
            observables += [relation["source"], relation["related"]]
        for observable in observables:
            if observable.get("type") not in OBSERVABLE_TYPES:
                found.append(f"observable type {observable.get('type')}")
            if not observable.get("value"):
                found.append(f"an observable without a value: {observable}")
        columns = sighting.get("data", {}).get("columns", [])
        for row in sighting.get("data", {}).get("rows", []):
            if len(row) != len(columns):
                found.append(f"a data row of {len(row)} cells for {len(columns)} columns")
            for column, cell in zip(columns, row):
                if column.get("required", True) and cell is None:
                    found.append(f"null in the required column {column['name']}")
    for indicator in indicators:
        if indicator.get("confidence") not in HIGH_MED_LOW:
            found.append(f"indicator confidence {indicator.get('confidence')}")
    return found


def assert_valid(answer: dict) -> None:
    found = problems(answer)
    assert not found, "not valid CTIM:\n  " + "\n  ".join(found)


def stable(answer):
    """`answer` with each random `transient:` id replaced by its rank of first appearance, so
    two renderings of the same data compare equal."""
    names: dict[str, str] = {}

    def walk(value):
        if isinstance(value, dict):
            return {key: walk(item) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item) for item in value]
        if isinstance(value, str) and value.startswith("transient:"):
            return names.setdefault(value, f"transient:{len(names)}")
        return value

    return walk(answer)
