"""Typed settings, read from ``CONFSVC_*`` environment variables or a ``.env`` file.

Tests and the CLI build a :class:`Settings` explicitly and hand it to ``create_app``;
nothing mutates the environment to reconfigure a running process (STYLE habit 11).
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from datetime import time
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Secrets that look like someone copied an example; refused outside the demo.
PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "dev", "test", "please-change-me"})


class Settings(BaseSettings):
    """All runtime settings. Every field maps to ``CONFSVC_<FIELD>`` (case-insensitive)."""

    model_config = SettingsConfigDict(env_prefix="CONFSVC_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("data"), description="Directory for the SQLite file and the demo's generated secret.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL. Default: sqlite:///<data_dir>/confsvc.sqlite3."
    )
    redis_url: str | None = Field(None, description="Redis URL for the cross-process event stream; none = in-process.")
    timezone: str = Field("Asia/Ho_Chi_Minh", description="IANA zone used to show times and to read offset-less input.")
    secret_key: str | None = Field(None, description="Signs session cookies. Required outside the demo.")
    demo: bool = Field(False, description="Demo mode: a missing secret is generated and kept under data_dir.")
    max_request_bytes: int = Field(5 * 1024 * 1024, gt=0, description="Largest request body accepted (bytes).")
    page_size_max: int = Field(500, gt=0, description="Upper bound of the `limit` query parameter.")
    session_max_age_seconds: int = Field(12 * 3600, gt=0, description="Lifetime of a web session cookie.")
    default_language: str = Field("vi", description="UI language when the user has not chosen one (vi or en).")

    # Scheduling (SPEC conflict rule 9: limits are settings). Minutes unless the name says otherwise.
    default_check_lead_minutes: int = Field(60, ge=0, description="Technical-check lead before a meeting (kiểm tra kỹ thuật).")
    default_teardown_minutes: int = Field(0, ge=0, description="Buffer kept after a meeting ends.")
    max_meeting_duration_minutes: int = Field(720, gt=0, description="Longest meeting (end − start) accepted.")
    max_check_lead_minutes: int = Field(240, ge=0, description="Largest technical-check lead accepted.")
    max_teardown_minutes: int = Field(240, ge=0, description="Largest teardown buffer accepted.")
    booking_horizon_days: int = Field(730, gt=0, description="How far ahead a meeting may start.")
    series_horizon_days: int = Field(
        180, ge=0, description="Occurrences of a series are materialised (and booked) this far ahead; "
        "`confsvc` extends them with a job. 0 refuses series without COUNT/UNTIL.")
    working_hours_start: time = Field(time(7, 30), description="Free-slot search: earliest local start of a meeting.")
    working_hours_end: time = Field(time(17, 0), description="Free-slot search: latest local end of a meeting.")
    working_weekdays: str = Field("0,1,2,3,4", description="Free-slot search: local weekdays, 0 = Monday.")
    slot_step_minutes: int = Field(15, gt=0, description="Free-slot search: granularity of proposed starts.")
    late_join_minutes: int = Field(5, ge=0, description="Usage statistics: a site whose first connection comes "
                                   "later than start + this is a late join (working hours above also define "
                                   "room utilisation).")
    call_clock_skew_minutes: int = Field(5, ge=0, description="Call records: a report time may be at most this "
                                         "far in the future (device clock skew); later is refused.")
    pin_digits: int = Field(6, ge=4, le=12, description="Length of generated meeting PINs.")

    # Calendar (SPEC "Calendar"): invites and subscription feeds.
    feed_past_days: int = Field(90, ge=0, description="A feed shows occurrences that ended at most this many days ago, "
                                "and every future one.")
    feed_refresh_minutes: int = Field(60, gt=0, description="REFRESH-INTERVAL / X-PUBLISHED-TTL of feeds.")
    public_base_url: str | None = Field(None, description="Base URL in links inside invites and feeds, e.g. "
                                        "https://lichhop.phutho.gov.vn; default: the request's own.")
    calendar_organizer_email: str = Field("lich-hop@confsvc.invalid", description="ORGANIZER address of invites "
                                          "when the organizer has no e-mail.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @property
    def max_booking_window_minutes(self) -> int:
        """Upper bound of any booking's window length; bounds every overlap range scan."""
        return self.max_meeting_duration_minutes + self.max_check_lead_minutes + self.max_teardown_minutes

    @property
    def working_weekday_set(self) -> frozenset[int]:
        return frozenset(int(d) for d in self.working_weekdays.split(",") if d.strip())

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'confsvc.sqlite3').as_posix()}"

    def resolved_secret_key(self) -> str:
        """Return the secret used to sign cookies.

        Raises:
            RuntimeError: no secret (or a placeholder) is configured outside demo mode.
        """
        if self.secret_key and self.secret_key.strip().lower() not in PLACEHOLDER_SECRETS:
            return self.secret_key
        if not self.demo:
            raise RuntimeError(
                "CONFSVC_SECRET_KEY is missing or a placeholder. Set it to a long random value "
                "(python -c 'import secrets; print(secrets.token_urlsafe(48))'), or run `confsvc demo`."
            )
        path = self.data_dir / "secret_key"
        if path.exists():
            return path.read_text(encoding="utf-8").strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.write_text(key, encoding="utf-8")
        path.chmod(0o600)
        return key


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
