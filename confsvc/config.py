"""Typed settings, read from ``CONFSVC_*`` environment variables or a ``.env`` file.

Tests and the CLI build a :class:`Settings` explicitly and hand it to ``create_app``;
nothing mutates the environment to reconfigure a running process (STYLE habit 11).
"""

from __future__ import annotations

import hashlib
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
    login_token_ttl_hours: int = Field(12, gt=0, le=24 * 366, description="Lifetime of a bearer token issued by "
                                       "`POST /api/v1/auth/token` (password login).")
    cookie_secure: bool = Field(False, description="Always set the session cookie's Secure flag. Without it, "
                                "Secure is set when the request came over HTTPS (directly, or X-Forwarded-Proto "
                                "from a proxy in forwarded_allow_ips).")
    forwarded_allow_ips: str = Field("127.0.0.1", description="`confsvc serve`: comma-separated addresses of "
                                     "proxies whose X-Forwarded-For/-Proto uvicorn trusts (client address and "
                                     "https for the Secure cookie and login throttling).")
    login_attempts_per_account: int = Field(10, ge=1, description="Failed logins per username per "
                                            "login_window_seconds before 429 (API and web form).")
    login_attempts_per_address: int = Field(30, ge=1, description="Failed logins per client address per "
                                            "login_window_seconds before 429.")
    login_window_seconds: int = Field(300, gt=0, description="Window of the login throttles (seconds).")
    auth_cache_seconds: float = Field(5, ge=0, le=60, description="A bearer token is verified against the "
                                      "database once per this many seconds in each process (0: every request). "
                                      "Revocation and user changes end it at once in the process that makes "
                                      "them, and through the live fan-out in the others (`users.token_cache`).")
    request_threads: int = Field(2, ge=1, le=400, description="Synchronous requests (the API, pages, "
                                 "feeds) each worker process runs at once; more wait their turn, in order. A "
                                 "worker runs Python on one core at a time: more threads only share it, so under "
                                 "load a long request waited behind every short one started after it "
                                 "(`bench/contention.py`, 50 clients, 2 workers: p95 1.33 s with 40 threads, "
                                 "about 1.0 s with 4, 0.94 s with 3, 0.84 s with 2). Raise it when requests "
                                 "mostly wait on a slow database or network, or for long exports.")
    metrics_token: str | None = Field(None, description="Bearer token `/metrics` requires (compared in constant "
                                      "time); unset = only loopback clients may read it.")
    log_format: str = Field("text", pattern="^(text|json)$", description="Log lines as `text` or `json` (one "
                            "object a line, with request_id).")
    outage_log_interval_seconds: float = Field(30, gt=0, description="A database outage is logged once per "
                                               "this interval (the first line with its traceback), not per request.")
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
    maintenance_past_days: int = Field(1, ge=0, le=366, description="A maintenance window or a day block may start "
                                       "at most this many days before now (bounds the rows one request writes).")
    max_maintenance_days: int = Field(92, gt=0, le=3660, description="Longest maintenance window accepted (days); "
                                      "it must also end within booking_horizon_days.")
    max_block_days: int = Field(92, gt=0, le=3660, description="Most local days in one room or endpoint block "
                                "(`POST …/blocks`); it must also end within booking_horizon_days.")
    max_series_occurrences: int = Field(1000, gt=0, le=100_000, description="Most occurrences one series request "
                                        "materialises; more is a 422 (the series horizon bounds the rest).")
    availability_max_range_days: int = Field(62, gt=0, le=3660, description="Free-slot search: largest "
                                             "from_date…to_date range (days).")
    request_expiry_hours: int = Field(48, gt=0, description="A pending meeting request (yêu cầu đặt lịch) expires "
                                      "this many hours after it was submitted; the scheduler cancels it and frees "
                                      "its resources.")
    working_hours_start: time = Field(time(7, 30), description="Free-slot search: earliest local start of a meeting.")
    working_hours_end: time = Field(time(17, 0), description="Free-slot search: latest local end of a meeting.")
    working_weekdays: str = Field("0,1,2,3,4", description="Free-slot search: local weekdays, 0 = Monday.")
    slot_step_minutes: int = Field(15, gt=0, description="Free-slot search: granularity of proposed starts.")
    lunch_break_start: time | None = Field(time(11, 30), description="Free-slot search: local start of the lunch "
                                           "break; no meeting proposed overlaps it. Unset = no break.")
    lunch_break_end: time | None = Field(time(13, 30), description="Free-slot search: local end of the lunch break.")
    availability_extra_days: int = Field(14, ge=0, le=62, description="Free-slot search: when the asked days have "
                                         "no free slot, at most this many following days are searched.")
    late_join_minutes: int = Field(5, ge=0, description="Usage statistics: a site whose first connection comes "
                                   "later than start + this is a late join (working hours above also define "
                                   "room utilisation).")
    stats_summary_days: int = Field(400, ge=0, description="Usage statistics: a background job (on the scheduler's "
                                    "cadence) keeps the figures of this many past local days stored, so reports "
                                    "over them read stored days; 0 = off (reports then store what they compute).")
    stats_max_period_days: int = Field(3660, gt=0, le=36600, description="Usage statistics: longest report period "
                                       "(days) of the API, the exports and `confsvc stats refresh`.")
    call_clock_skew_minutes: int = Field(5, ge=0, description="Call records: a report time may be at most this "
                                         "far in the future (device clock skew); later is refused.")
    pin_digits: int = Field(6, ge=4, le=12, description="Length of generated meeting PINs.")

    # Calendar (SPEC "Calendar"): invites and subscription feeds.
    feed_past_days: int = Field(90, ge=0, description="A feed shows occurrences that ended at most this many days ago, "
                                "and every future one.")
    idempotency_ttl_hours: int = Field(24, gt=0, le=24 * 30, description="An `Idempotency-Key` of "
                                       "`POST /api/v1/meetings` is remembered (with its answer) this long.")
    feed_refresh_minutes: int = Field(60, gt=0, description="REFRESH-INTERVAL / X-PUBLISHED-TTL of feeds.")
    public_base_url: str | None = Field(None, description="Base URL in links inside invites and feeds, e.g. "
                                        "https://lichhop.phutho.gov.vn; default: the request's own.")
    calendar_organizer_email: str = Field("lich-hop@confsvc.invalid", description="ORGANIZER address of invites "
                                          "when the organizer has no e-mail.")

    # E-mailed invites (issue 5, mail/outbox.py). No smtp_host = mail off: nothing is queued.
    smtp_host: str | None = Field(None, description="SMTP server; unset = invitations are not e-mailed.")
    smtp_port: int | None = Field(None, ge=1, le=65535, description="Default 465 with smtp_ssl, 587 with "
                                  "smtp_starttls, else 25.")
    smtp_username: str | None = Field(None, description="SMTP AUTH user (with smtp_password).")
    smtp_password: str | None = Field(None, description="SMTP AUTH password.")
    smtp_starttls: bool = Field(False, description="Upgrade the connection with STARTTLS (RFC 3207).")
    smtp_ssl: bool = Field(False, description="Implicit TLS from the first byte (SMTPS, RFC 8314).")
    smtp_sender: str | None = Field(None, description="From address; default calendar_organizer_email.")
    smtp_timeout_seconds: float = Field(10, gt=0, le=300, description="Socket timeout of one SMTP session.")
    mail_interval_seconds: float = Field(30, ge=0, description="Seconds between dispatch rounds of the mail "
                                         "outbox (a committed meeting change also wakes it); 0 = no loop.")
    mail_max_attempts: int = Field(50, ge=1, description="Attempts per delivery before it is marked failed "
                                   "(backoff 30 s doubling to 30 min: about a day).")
    mail_backlog_hours: int = Field(24, ge=0, description="Meeting events older than this when the outbox first "
                                    "reads them (mail just switched on) are not mailed.")
    mail_attach_invitation_pdf: bool = Field(False, description="Attach the giấy mời as PDF (NĐ 30/2020, "
                                             "`invitation.pdf`) to e-mailed invitations and updates; rendered "
                                             "once when queued.")

    # Live status (issue 4): reachability probe, readiness, scheduler. 0 seconds = loop off
    # (the default, so tests and one-off commands start no background task; production sets them).
    probe_port: int = Field(443, ge=1, le=65535, description="TCP port the reachability probe connects to on an "
                            "endpoint's management IP; 443 because codecs (Poly, Cisco, Yealink) serve their "
                            "HTTPS management page there, while SIP is often UDP-only.")
    probe_timeout_seconds: float = Field(3.0, gt=0, le=60, description="Connect timeout of one probe.")
    probe_misses_offline: int = Field(3, ge=1, description="Consecutive failed probes that mark an endpoint offline.")
    probe_concurrency: int = Field(200, ge=1, description="Probes in flight at once.")
    probe_interval_seconds: float = Field(0, ge=0, description="Seconds between probe rounds; 0 = off "
                                          "(production: 60).")
    scheduler_interval_seconds: float = Field(0, ge=0, description="Seconds between scheduler ticks (reminders, "
                                              "started/ended, readiness deadline); 0 = off (production: 15).")
    readiness_deadline_minutes: int = Field(15, ge=0, description="Sites must be ready this long before start.")
    starting_soon_minutes: int = Field(5, ge=0, description="`starting_soon` reminder this long before start.")
    ended_notice_grace_minutes: int = Field(24 * 60, gt=0, description="A `meeting.ended` missed by a scheduler "
                                            "outage is still sent this long after the end, then dropped.")

    # Live channel (issue 4): WebSocket hub and cross-process fan-out (SPEC "Live channel").
    event_retention_days: int = Field(30, gt=0, description="Outbox events older than this are pruned; a client "
                                      "resuming from before the oldest kept event gets a fresh snapshot.")
    ws_queue_size: int = Field(256, ge=1, description="Messages buffered per WebSocket; a client that falls this "
                               "far behind is dropped (close 4429) so it never stalls the others.")
    ws_ping_seconds: float = Field(25, gt=0, description="Seconds between server pings; a client silent for "
                                   "three intervals is closed (4408).")
    redis_channel: str = Field("confsvc:events", min_length=1, max_length=200,
                               description="Redis pub/sub channel of the event stream (with redis_url).")
    join_dial_mode: str = Field("dial_in", pattern="^(dial_in|dial_out)$", description="dial_in: endpoints dial "
                                "the MCU; dial_out: the MCU calls each endpoint's dial address.")

    @field_validator("lunch_break_start", "lunch_break_end", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

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

    def fingerprint(self, names: tuple[str, ...]) -> str:
        """SHA-256 (hex) of the named settings' values (fields or properties): what derived data (the
        usage summary's stored days, a feed's ETag) records of the settings that shaped it."""
        return hashlib.sha256(repr([(name, getattr(self, name)) for name in names]).encode()).hexdigest()

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
