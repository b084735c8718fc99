"""render: the mapping alone, over records and catalogs a tool already fetched."""

from __future__ import annotations

import pytest
import spycloud_relay
from conftest import catalog, record
from ctim_rules import assert_valid, stable
from spycloud_relay import InvalidInputError

PAT = "pat@example.com"


def records():
    return [record(PAT, 1, source_id=7), record(PAT, 9, source_id=8), record(PAT, 3, source_id=99)]


# RULES R53
def test_render_gives_what_a_lookup_of_the_same_data_gives(spycloud, client):
    spycloud.add("emails", PAT, records())
    spycloud.catalogs.update({7: catalog(7), 8: catalog(8)})
    for format in ("ctim", "findings"):
        rendered = spycloud_relay.render(
            records(), [catalog(7), catalog(8)], PAT, format=format
        )
        assert stable(rendered) == stable(client.lookup(PAT, format=format))
    assert_valid(spycloud_relay.render(records(), [catalog(7), catalog(8)], PAT))


def test_render_orders_records_newest_first_and_takes_a_typed_observable():
    answer = spycloud_relay.render(
        records(), [], {"type": "email", "value": PAT}, format="findings"
    )
    dates = [r["spycloud_publish_date"] for r in answer["observables"][0]["records"]]
    assert dates == sorted(dates, reverse=True)


def test_render_applies_the_password_policy():
    answer = spycloud_relay.render(records()[:1], [], PAT, passwords="masked", format="findings")
    assert answer["observables"][0]["records"][0]["password"] == "hu******"


# RULES R53
@pytest.mark.parametrize(
    ("records", "catalogs", "observable", "kind"),
    [
        ([{"email": PAT}], [], PAT, InvalidInputError),
        ([record(PAT, 1, severity="high")], [], PAT, InvalidInputError),
        (["not a record"], [], PAT, InvalidInputError),
        ({"not": "a list"}, [], PAT, TypeError),
        ([{"when": {1, 2}}], [], PAT, TypeError),
        ([record(PAT, 1, score=float("nan"))], [], PAT, TypeError),
        ([], [{"title": "no id"}], PAT, InvalidInputError),
        ([], [], "jdoe", InvalidInputError),
        ([], [], [PAT, PAT], InvalidInputError),
    ],
)
def test_render_refuses_what_it_cannot_read(records, catalogs, observable, kind):
    with pytest.raises(kind):
        spycloud_relay.render(records, catalogs, observable)


# RULES R51
def test_deep_nesting_is_an_exception_not_a_crash():
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises((TypeError, ValueError)):
        spycloud_relay.render([record(PAT, 1, nested=deep)], [], PAT)
