"""Each typed error of the crate as its exception class, with the contract's code and
message; bad input from Python as a clear exception, never a crash."""

from __future__ import annotations

import itertools

import pytest
import spycloud_relay
from conftest import API_KEY, record
from spycloud_relay import (
    AuthorizationError,
    DeadlineError,
    InvalidInputError,
    IpNotAllowedError,
    NotFoundError,
    QuotaUsedUpError,
    RateLimitedError,
    SpyCloudRelayError,
    UpstreamError,
)

PAT = "pat@example.com"
DATA = "/breach/data/"

CASES = [
    (
        "unauthorized",
        (401, {}, '{"message": "Bad key"}'),
        AuthorizationError,
        "authorization error",
        "Authorization failed: Bad key",
    ),
    (
        "invalid API key",
        (403, {"SpyCloud-Error": "Invalid API key"}, ""),
        AuthorizationError,
        "authorization error",
        "Authorization failed: The SpyCloud API key is not valid.",
    ),
    (
        "IP not allowed",
        (403, {"SpyCloud-Error": "Invalid IP"}, ""),
        IpNotAllowedError,
        "authorization error",
        "Authorization failed: SpyCloud does not accept calls from this relay's IP address "
        "for this API key. Ask SpyCloud to allow it.",
    ),
    (
        "rate limited",
        (429, {}, ""),
        RateLimitedError,
        "too many requests",
        "Too many requests have been made to Spycloud. Please, try again later.",
    ),
    (
        "quota used up",
        (429, {"x-amzn-ErrorType": "LimitExceededException"}, ""),
        QuotaUsedUpError,
        "too many requests",
        "The SpyCloud API key's monthly quota is used up. Please, contact SpyCloud.",
    ),
    ("not found", (404, {}, ""), NotFoundError, "not found", "The Spycloud not found."),
    (
        "internal error",
        (500, {}, ""),
        UpstreamError,
        "internal error",
        "The Spycloud internal error.",
    ),
]


# RULES R49
@pytest.mark.parametrize(
    ("answer", "kind", "code", "message"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_each_spycloud_failure_is_its_exception(spycloud, client, answer, kind, code, message):
    status, headers, body = answer
    spycloud.fail(DATA, status, headers, body)
    with pytest.raises(kind) as raised:
        client.lookup(PAT)
    assert isinstance(raised.value, SpyCloudRelayError)
    assert (raised.value.code, raised.value.message) == (code, message)
    assert str(raised.value) == message


# RULES R49
def test_the_classes_are_one_hierarchy():
    assert issubclass(IpNotAllowedError, AuthorizationError)
    for kind in (
        AuthorizationError,
        RateLimitedError,
        QuotaUsedUpError,
        NotFoundError,
        UpstreamError,
        DeadlineError,
        InvalidInputError,
    ):
        assert issubclass(kind, SpyCloudRelayError)
    # A quota used up is not a rate limit worth retrying.
    assert not issubclass(QuotaUsedUpError, RateLimitedError)


def test_a_wrong_api_key_is_an_authorization_error(spycloud):
    client = spycloud_relay.Client("another key", api_url=spycloud.url, retries=0)
    with pytest.raises(AuthorizationError):
        client.lookup(PAT)
    with pytest.raises(AuthorizationError):
        client.health()


# RULES R49
def test_health_is_none_or_the_exception(spycloud, client):
    assert client.health() is None
    assert spycloud.calls_to("/watchlist/")[0].api_key == API_KEY
    spycloud.fail("/watchlist/", 403, {"SpyCloud-Error": "Invalid IP"})
    with pytest.raises(IpNotAllowedError):
        client.health()


def test_unavailable_is_retried(spycloud):
    spycloud.fail(DATA, 503, times=2)
    spycloud.add("emails", PAT, [record(PAT, 1)])
    client = spycloud_relay.Client(API_KEY, api_url=spycloud.url, retries=2)
    answer = client.lookup(PAT, format="findings")
    assert len(answer["observables"][0]["records"]) == 1
    assert len(spycloud.calls_to(DATA)) == 3


def test_no_connection_is_an_upstream_error(spycloud):
    client = spycloud_relay.Client(API_KEY, api_url="http://127.0.0.1:9", retries=0)
    with pytest.raises(UpstreamError) as raised:
        client.lookup(PAT)
    assert raised.value.code == "unknown"


# RULES R49
def test_the_deadline_is_an_exception_of_its_own(spycloud):
    spycloud.delay = 3
    client = spycloud_relay.Client(API_KEY, api_url=spycloud.url, deadline=1, retries=0)
    with pytest.raises(DeadlineError) as raised:
        client.lookup(PAT)
    assert raised.value.code == "unknown"
    assert raised.value.message == (
        "SpyCloud did not answer everything within the relay's 1 s deadline."
    )


# RULES R48
def test_values_that_cannot_be_looked_up_are_invalid_input(client):
    with pytest.raises(InvalidInputError) as raised:
        client.lookup(
            ["jdoe", {"type": "ip", "value": "203.0.113.300"}, {"type": "sha256", "value": "abc"}]
        )
    assert raised.value.code == "invalid argument"
    assert raised.value.message.splitlines() == [
        "cannot tell what jdoe is: give its type with types= (email, domain, ip, ipv6, user)",
        "203.0.113.300 is not a valid IPv4 address",
        "sha256 is not a type the relay looks up (email, domain, ip, ipv6, user)",
    ]
    with pytest.raises(InvalidInputError):
        client.lookup("not-an-email@", types="email")
    with pytest.raises(InvalidInputError):
        client.lookup([])


# RULES R48
def test_too_many_values_are_refused_without_reading_them_all(client):
    endless = (f"user{n}@example.com" for n in itertools.count())
    with pytest.raises(InvalidInputError) as raised:
        client.lookup(endless)
    assert "At most 100 values" in raised.value.message


# RULES R51
@pytest.mark.parametrize(
    ("call", "kind"),
    [
        (lambda c: c.lookup([123]), TypeError),
        (lambda c: c.lookup(None), TypeError),
        (lambda c: c.lookup([{"value": PAT}]), TypeError),
        (lambda c: c.lookup([{"type": "email", "value": 7}]), TypeError),
        (lambda c: c.lookup([PAT], types=["email", "email"]), ValueError),
        (lambda c: c.lookup([PAT], types=5), TypeError),
        (lambda c: c.lookup(PAT, format="xml"), ValueError),
        (lambda c: c.lookup(PAT, limit=0), ValueError),
        (lambda c: c.lookup(PAT, limit=-1), OverflowError),
        (lambda c: c.lookup(PAT, limit=10**30), OverflowError),
    ],
)
def test_bad_arguments_to_lookup_are_python_errors(client, call, kind):
    with pytest.raises(kind):
        call(client)


# RULES R51
@pytest.mark.parametrize(
    ("kwargs", "kind"),
    [
        ({"api_key": ""}, ValueError),
        ({"api_url": "api.spycloud.io"}, ValueError),
        ({"max_rps": 0}, ValueError),
        ({"max_rps": 10**6}, ValueError),
        ({"timeout": float("nan")}, ValueError),
        ({"timeout": -1}, ValueError),
        ({"deadline": float("inf")}, ValueError),
        ({"retries": 11}, ValueError),
        ({"passwords": "hidden"}, ValueError),
        ({"max_records": 0}, ValueError),
        ({"severity": "high"}, ValueError),
        ({"severity": 2.5}, TypeError),
        ({"since_days": 0}, ValueError),
        ({"since_days": 100_000}, ValueError),
    ],
)
def test_bad_client_settings_are_python_errors(kwargs, kind):
    settings = {"api_key": API_KEY, **kwargs}
    with pytest.raises(kind):
        spycloud_relay.Client(**settings)


# RULES R51
def test_the_api_key_is_not_in_the_repr(client):
    assert API_KEY not in repr(client)
