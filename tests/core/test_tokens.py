"""One secret-token scheme (``confsvc.tokens``) for user, feed, display and agent tokens: shape, stored
digest (unchanged: SHA-256 hex, so existing rows keep working) and constant-time matching."""

from __future__ import annotations

import hashlib

import pytest

from confsvc import tokens
from confsvc.calendar.tokens import SECRET_PREFIX as FEED_PREFIX
from confsvc.endpoints.agent_tokens import AGENT_TOKEN_PREFIX
from confsvc.live.display import SECRET_PREFIX as DISPLAY_PREFIX
from confsvc.users import security


@pytest.mark.parametrize("prefix", [security.TOKEN_PREFIX, FEED_PREFIX, DISPLAY_PREFIX, AGENT_TOKEN_PREFIX])
def test_new_secret_has_prefix_shown_part_and_stored_digest(prefix: str) -> None:
    fresh = tokens.new_secret(prefix)
    assert fresh.secret.startswith(prefix) and len(fresh.secret) == len(prefix) + 43
    assert fresh.shown == fresh.secret[:12]
    assert fresh.digest == hashlib.sha256(fresh.secret.encode()).hexdigest()
    assert tokens.matches(fresh.secret, fresh.digest)
    assert not tokens.matches(fresh.secret + "x", fresh.digest)


def test_stored_digest_format_is_unchanged_for_existing_rows() -> None:
    assert tokens.hash_secret("cal_abc") == "4432b0e025b3d411b6a6644e006841079a550afff0d27cfceceb2ce3e2e81356"
    assert security.hash_token("cfs_x") == tokens.hash_secret("cfs_x")
    assert (security.TOKEN_PREFIX, FEED_PREFIX, DISPLAY_PREFIX, AGENT_TOKEN_PREFIX) == (
        "cfs_", "cal_", "dsp_", "cfa_")
