"""Pure: dial addresses and IP addresses."""

import pytest

from confsvc.endpoints.models import Protocol
from confsvc.endpoints.validation import normalise_dial_address, normalise_ip


@pytest.mark.parametrize(("protocol", "value", "expected"), [
    (Protocol.sip, "sip:viettri@vc.phutho.gov.vn", "sip:viettri@vc.phutho.gov.vn"),
    (Protocol.sip, "SIP:room.1@10.25.0.5:5061", "sip:room.1@10.25.0.5:5061"),
    (Protocol.sip, "sips:ubnd@mcu1.phutho.gov.vn", "sips:ubnd@mcu1.phutho.gov.vn"),
    (Protocol.sip, " 10.25.3.10 ", "10.25.3.10"),
    (Protocol.h323, "0210079000", "0210079000"),
    (Protocol.h323, "+842103847000", "+842103847000"),
    (Protocol.h323, "UBND-VietTri", "UBND-VietTri"),
    (Protocol.h323, "viettri@gk.phutho.gov.vn", "viettri@gk.phutho.gov.vn"),
    (Protocol.h323, "fe80::1", "fe80::1"),
])
def test_valid_dial_addresses(protocol: Protocol, value: str, expected: str) -> None:
    assert normalise_dial_address(protocol, value) == expected


@pytest.mark.parametrize(("protocol", "value", "reason"), [
    (Protocol.sip, "viettri", "not a SIP URI"),
    (Protocol.sip, "sip:@vc.phutho.gov.vn", "not a SIP URI"),
    (Protocol.sip, "sip:a@host:70000", "not a SIP URI"),
    (Protocol.sip, "sip:a b@host", "not a SIP URI"),
    (Protocol.h323, "sip:viettri@vc.phutho.gov.vn", "not an H.323"),
    (Protocol.h323, "", "empty"),
    (Protocol.h323, "Việt Trì", "not an H.323"),
])
def test_invalid_dial_addresses(protocol: Protocol, value: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalise_dial_address(protocol, value)


def test_ip_is_canonicalised_and_garbage_refused() -> None:
    assert normalise_ip("2001:0db8::0001") == "2001:db8::1"
    with pytest.raises(ValueError, match="not an IP address: '10.25.300.1'"):
        normalise_ip("10.25.300.1")
