"""SpyCloud lookups for Python SOAR playbooks: the spycloud-relay client (paging, retries, rate
limit, catalog cache, deadline) and its renderings, in Rust.

    import spycloud_relay
    client = spycloud_relay.Client(api_key=KEY)
    bundle = client.lookup(["jane@acme.test", "acme.test"], format="stix")
"""

from typing import Any, Iterable, Literal, Mapping, Optional, Sequence, Union, final

__all__ = [
    "__version__",
    "Client",
    "render",
    "SpyCloudRelayError",
    "AuthorizationError",
    "IpNotAllowedError",
    "RateLimitedError",
    "QuotaUsedUpError",
    "NotFoundError",
    "UpstreamError",
    "DeadlineError",
    "InvalidInputError",
    "SpyCloudRelayWarning",
]

__version__: str

_Format = Literal["ctim", "stix", "findings"]
_Tlp = Literal["white", "green", "amber", "red"]
_Passwords = Literal["plaintext", "masked", "omitted"]
_ObservableType = Literal["email", "domain", "ip", "ipv6", "user"]
_Value = Union[str, Mapping[str, str]]

class SpyCloudRelayError(Exception):
    """A lookup or health check failed: the base of every exception below."""

    code: str
    """The contract's SecureX code, e.g. ``"authorization error"``, ``"too many requests"``."""
    message: str
    """The contract's message (also ``str(error)``)."""

class AuthorizationError(SpyCloudRelayError):
    """SpyCloud refused the API key (401, 403, or its key is not valid)."""

class IpNotAllowedError(AuthorizationError):
    """SpyCloud does not take calls from this machine's IP address for the key."""

class RateLimitedError(SpyCloudRelayError):
    """SpyCloud's rate limit, after the retries: worth trying again later."""

class QuotaUsedUpError(SpyCloudRelayError):
    """The API key's monthly quota is used up: retrying will not help before it renews."""

class NotFoundError(SpyCloudRelayError):
    """SpyCloud answered 404."""

class UpstreamError(SpyCloudRelayError):
    """SpyCloud failed otherwise: a 500, another status, TLS, a timeout, no connection, an
    unreadable answer."""

class DeadlineError(SpyCloudRelayError):
    """The client's deadline passed before SpyCloud answered everything."""

class InvalidInputError(SpyCloudRelayError):
    """Values that cannot be typed or are not valid for their type, more than 100 values,
    records or catalogs that cannot be read. ``code`` is ``"invalid argument"``."""

class SpyCloudRelayWarning(UserWarning):
    """What a STIX bundle cannot say (it has no error object), warned with ``warnings.warn``:
    a value not looked up, records skipped, more records than ``max_records``."""

@final
class Client:
    """A SpyCloud client with one API key: the relay's real pipeline (rate limit per key,
    retries of 429/502/503/504 and failed connections, the catalog cache, every page, the
    deadline).

    Each client owns one tokio runtime (two worker threads), its connection pool, rate limiter
    and catalog cache: make one per API key and share it between threads. ``lookup`` and
    ``health`` release the GIL while they wait on SpyCloud.

    :param api_key: the SpyCloud Enterprise API key.
    :param api_url: the API base.
    :param max_rps: calls per second to SpyCloud, also the burst (1 to 10000).
    :param timeout: seconds one call to SpyCloud may take.
    :param retries: extra attempts of a call worth retrying (0 to 10).
    :param passwords: how secrets (passwords, salts, card data) appear in what ``lookup``
        returns.
    :param max_records: breach records read for one value at most; past it, a
        ``too many results`` warning.
    :param severity: only records of these severity codes (``25``, ``[20, 25]`` or
        ``"20,25"``).
    :param since_days: only records published in the last so many days (1 to 3650).
    :param deadline: seconds one ``lookup`` or ``health`` may take in all.
    :param tlp: the TLP marking of every STIX object made from SpyCloud's data.
    :raises ValueError: a setting out of its bounds, an API URL that is not http(s).
    """

    def __new__(
        cls,
        api_key: str,
        *,
        api_url: str = "https://api.spycloud.io/enterprise-v2",
        max_rps: int = 10,
        timeout: float = 10.0,
        retries: int = 2,
        passwords: _Passwords = "plaintext",
        max_records: int = 10000,
        severity: Union[None, int, Sequence[int], str] = None,
        since_days: Optional[int] = None,
        deadline: float = 25.0,
        tlp: _Tlp = "amber",
    ) -> Client: ...
    def lookup(
        self,
        values: Union[_Value, Iterable[_Value]],
        *,
        types: Union[None, _ObservableType, Sequence[_ObservableType]] = None,
        limit: int = 100,
        format: _Format = "ctim",
    ) -> dict[str, Any]:
        """Looks ``values`` up at SpyCloud (at most 100) and renders what it holds.

        Each value is a text typed by its form as the ``spycloud-relay lookup`` command types
        it (an ``@`` makes an email, an IP literal an ``ip`` or ``ipv6``, a dotted name a
        domain), or by ``types`` (one type for all, or one per value), or a
        ``{"type": ..., "value": ...}`` dict.

        :param limit: breach records per value, newest first.
        :param format: ``"ctim"``: SecureX's envelope (``{"data": {"sightings", "indicators",
            "relationships"}, "errors": [warnings]}``), as the relay's observe route answers;
            ``"stix"``: a STIX 2.1 bundle (incidents, the observables, the breach catalogs,
            TLP-marked; its warnings as ``SpyCloudRelayWarning``);
            ``"findings"``: ``{"observables": [{"observable", "records", "catalogs",
            "warnings"}], "warnings"}``, what SpyCloud said.
        :raises SpyCloudRelayError: a subclass, for what stopped the lookup.
        :raises InvalidInputError: values that cannot be looked up.
        :raises TypeError, ValueError: arguments of the wrong type or out of bounds.
        """
    def health(self) -> None:
        """One authenticated call to SpyCloud; raises the ``SpyCloudRelayError`` subclass of
        what failed."""

def render(
    records: Sequence[Mapping[str, Any]],
    catalogs: Sequence[Mapping[str, Any]],
    observable: _Value,
    *,
    format: _Format = "ctim",
    passwords: _Passwords = "plaintext",
    tlp: _Tlp = "amber",
) -> dict[str, Any]:
    """The mapping alone, without a call to SpyCloud: SpyCloud's breach ``records`` of
    ``observable`` and the breach ``catalogs`` they name, rendered as ``lookup`` renders them.

    :raises InvalidInputError: a record without a ``spycloud_publish_date`` or with a typed
        field of the wrong kind, a catalog without an ``id``, an observable that cannot be
        typed.
    :raises TypeError: data that is not JSON.
    """
