"""Pure checks of dial addresses and IP addresses: values in, normalised value or ValueError out."""

from __future__ import annotations

import ipaddress
import re

from confsvc.endpoints.models import Protocol

_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])"
_SIP_URI = re.compile(rf"^sips?:(?P<user>[A-Za-z0-9._~+!$&'*=-]+)@(?P<host>{_HOST})(?::(?P<port>\d{{1,5}}))?$")
_E164 = re.compile(r"^\+?[0-9]{1,15}$")
_H323_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_H323_URL = re.compile(rf"^(?:h323:)?(?P<alias>[A-Za-z0-9][A-Za-z0-9._-]{{0,63}})@(?P<host>{_HOST})$")


def normalise_ip(value: str) -> str:
    """Canonical text of an IPv4/IPv6 address. Raises ValueError for anything else."""
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise ValueError(f"not an IP address: {value!r}") from None


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def normalise_dial_address(protocol: Protocol, value: str) -> str:
    """Validate the address a bridge dials to reach an endpoint (or the endpoint registers as).

    SIP: a SIP URI ``sip:user@host[:port]`` (RFC 3261 §19.1; ``sips:`` too) or a bare IP address.
    H.323: an E.164 number, an H.323-ID alias, ``alias@host`` / ``h323:alias@host``, or an IP address.

    Returns the trimmed value (scheme lower-cased). Raises ValueError with the reason.
    """
    text = value.strip()
    if not text:
        raise ValueError("dial address is empty")
    if _is_ip(text.strip("[]")):
        return text
    if protocol is Protocol.sip:
        scheme, sep, rest = text.partition(":")
        candidate = f"{scheme.lower()}:{rest}" if sep else text
        match = _SIP_URI.match(candidate)
        if match is None or (match["port"] and not 0 < int(match["port"]) < 65536):
            raise ValueError(f"not a SIP URI (sip:user@host) or IP address: {value!r}")
        return candidate
    if _E164.match(text) or _H323_ID.match(text):
        return text
    if _H323_URL.match(text):
        return text
    raise ValueError(f"not an H.323 alias, E.164 number or IP address: {value!r}")
