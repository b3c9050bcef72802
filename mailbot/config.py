"""YAML configuration → frozen, validated settings; errors name the key path; secrets redacted."""

from __future__ import annotations

import ipaddress
import itertools
import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import regex
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mailbot.sla.calendar import parse_interval
from mailbot.sla.targets import Target, parse_target
from mailbot.units import parse_duration, parse_size

SEVERITIES = ("P1", "P2", "P3", "P4")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

DEFAULT_CUSTOMER_ID_PATTERNS: tuple[str, ...] = (
    r"\b(?:customer[\s_-]*id|cust\.?[\s_-]*id|cid)\b(?:\s*(?:is|:|=|#|-)\s*|\s+)#?\s*"
    r"((?:[A-Z]{1,6}-?)?\d{3,})\b",
)

Severity = Literal["P1", "P2", "P3", "P4"]
Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]


class ConfigError(Exception):
    """The configuration cannot be used; `errors` lists `key.path: message` lines."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def _context(info: ValidationInfo) -> dict[str, Any]:
    return info.context if isinstance(info.context, dict) else {}


def _resolve(path: str | Path | None, info: ValidationInfo) -> Path | None:
    if path is None:
        return None
    base = Path(_context(info).get("base_dir", "."))
    return (base / Path(path).expanduser()).resolve()


def _read_secret(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from exc


def is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


OAuthProvider = Literal["microsoft", "google", "generic"]
FLOW_URL_KEYS = {"device": "device_authorization_url", "browser": "authorization_url"}


class LoginSettings(_Model):
    """How a server is logged in to: a password, or OAuth2 with a provider's tokens."""

    auth: Literal["password", "oauth2"] = "password"
    provider: OAuthProvider | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    client_secret_file: Path | None = None
    tenant: str | None = None
    token_url: str | None = None
    device_authorization_url: str | None = None
    authorization_url: str | None = None
    login_flow: Literal["device", "browser"] | None = None
    scopes: tuple[str, ...] | None = None

    @field_validator("client_secret_file")
    @classmethod
    def _secret_path(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _resolve(value, info)

    def _check_login(self) -> None:
        """Raises ValueError naming the key that an `auth: oauth2` block lacks or gets wrong."""
        oauth_only = ("provider", "client_id", "client_secret", "tenant", "token_url",
                      "device_authorization_url", "authorization_url", "login_flow", "scopes")
        if self.auth != "oauth2":
            for key in oauth_only:
                if getattr(self, key) is not None:
                    raise ValueError(f"{key}: only with auth: oauth2")
            return
        if self.provider is None:
            raise ValueError("provider: required with auth: oauth2 "
                             "(microsoft, google or generic)")
        if not self.client_id:
            raise ValueError("client_id: required with auth: oauth2")
        if self.provider == "microsoft" and not self.tenant:
            raise ValueError("tenant: required with provider: microsoft "
                             "(the directory id, or organizations)")
        if self.provider != "microsoft" and self.tenant is not None:
            raise ValueError("tenant: only with provider: microsoft")
        if self.provider == "generic" and not self.token_url:
            raise ValueError("token_url: required with provider: generic")
        endpoint_keys = ("token_url", "device_authorization_url", "authorization_url")
        if self.provider != "generic":
            for key in endpoint_keys:
                if getattr(self, key) is not None:
                    raise ValueError(f"{key}: only with provider: generic "
                                     f"({self.provider}'s endpoints are known)")
        for key in endpoint_keys:
            url = getattr(self, key)
            if url is not None and not _https_or_loopback(url):
                raise ValueError(f"{key}: must be an https:// URL "
                                 "(http:// only to a loopback host)")
        if self.provider == "generic" and self.login_flow is not None:
            key = FLOW_URL_KEYS[self.login_flow]
            if getattr(self, key) is None:
                raise ValueError(f"{key}: required with login_flow: {self.login_flow}")


def _https_or_loopback(url: str) -> bool:
    parsed = urlsplit(url)
    if parsed.scheme == "https" and parsed.hostname:
        return True
    return parsed.scheme == "http" and is_loopback_host(parsed.hostname or "")


def _with_secrets(data: dict[str, Any], environ: Mapping[str, str], env_prefix: str,
                  where: str, info: ValidationInfo) -> dict[str, Any]:
    """`password` and `client_secret` from `MAILBOT_<PREFIX>_*` or their `*_file` keys."""
    data = dict(data)
    for key in ("password", "client_secret"):
        from_env = environ.get(f"{env_prefix}_{key.upper()}")
        if from_env:
            data[key] = from_env
            data.pop(f"{key}_file", None)
        elif data.get(f"{key}_file") and not data.get(key):
            path = _resolve(data[f"{key}_file"], info)
            assert path is not None
            try:
                data[key] = _read_secret(path)
            except ValueError as exc:
                raise ValueError(f"{where}{key}_file: {exc}") from exc
    return data


class ImapSettings(LoginSettings):
    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["ssl", "starttls", "none"] = "ssl"
    username: str = Field(min_length=1)
    password: SecretStr | None = None
    password_file: Path | None = None
    timeout: Duration = timedelta(seconds=30)
    tls_verify: bool = True
    ca_file: Path | None = None

    @field_validator("password_file", "ca_file")
    @classmethod
    def _paths(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _resolve(value, info)

    @model_validator(mode="after")
    def _check(self) -> ImapSettings:
        if self.security == "none" and not is_loopback_host(self.host):
            raise ValueError("security: 'none' (plain IMAP) is allowed only for a loopback host")
        self._check_login()
        if self.port is None:
            object.__setattr__(self, "port", 993 if self.security == "ssl" else 143)
        return self


class MailboxSettings(_Model):
    name: str = Field(pattern=r"^[a-z0-9_-]+$", max_length=64)
    imap: ImapSettings
    folder: str = "INBOX"
    processed_folder: str | None = "Processed"
    quarantine_folder: str = "Quarantine"
    idle: bool = True
    poll_interval: Duration = timedelta(seconds=60)
    batch_size: int = Field(default=100, ge=1, le=1000)
    stall_after: Duration = timedelta(minutes=10)

    @model_validator(mode="before")
    @classmethod
    def _secret_from_env(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("imap"), dict):
            return data
        name = str(data.get("name", "")).upper().replace("-", "_")
        imap = _with_secrets(data["imap"], _context(info).get("environ", {}),
                             f"MAILBOT_{name}_IMAP", "imap.", info)
        return {**data, "imap": imap}


class RetrySettings(_Model):
    """How long a mail the server would not take now waits before the next try."""

    first_delay: Duration = timedelta(seconds=30)
    max_delay: Duration = timedelta(minutes=30)
    give_up_after: Duration = timedelta(days=2)

    @model_validator(mode="after")
    def _check(self) -> RetrySettings:
        if self.first_delay <= timedelta(0):
            raise ValueError("first_delay: must be positive")
        if self.max_delay < self.first_delay:
            raise ValueError("max_delay: must not be shorter than first_delay")
        if self.give_up_after < self.max_delay:
            raise ValueError("give_up_after: must not be shorter than max_delay")
        return self


class SmtpSettings(LoginSettings):
    transport: Literal["smtp", "file"] = "smtp"
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["ssl", "starttls", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    timeout: Duration = timedelta(seconds=30)
    retry: RetrySettings = RetrySettings()
    dir: Path | None = None
    from_: str = Field(alias="from")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              validate_default=True)

    @field_validator("password_file", "dir")
    @classmethod
    def _paths(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _resolve(value, info)

    @field_validator("from_")
    @classmethod
    def _address(cls, value: str) -> str:
        if "@" not in parseaddr(value)[1]:
            raise ValueError(f"not an email address: {value!r}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _secret(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        return _with_secrets(data, _context(info).get("environ", {}), "MAILBOT_SMTP", "", info)

    @model_validator(mode="after")
    def _check(self) -> SmtpSettings:
        if self.transport == "file":
            if self.dir is None:
                raise ValueError("dir: required with transport: file")
            if self.auth != "password":
                raise ValueError("auth: only with transport: smtp")
            return self
        if not self.host:
            raise ValueError("host: required with transport: smtp")
        if self.security == "none" and not is_loopback_host(self.host):
            raise ValueError("security: 'none' (plain SMTP) is allowed only for a loopback host")
        self._check_login()
        if self.auth == "oauth2" and not self.username:
            raise ValueError("username: required with auth: oauth2")
        if self.port is None:
            port = {"ssl": 465, "starttls": 587, "none": 25}[self.security]
            object.__setattr__(self, "port", port)
        return self


class DatabaseSettings(_Model):
    url: str
    echo: bool = False
    lease_ttl: Duration = timedelta(seconds=30)
    busy_timeout: Duration = timedelta(seconds=30)  # SQLite: wait for another writer's lock

    @field_validator("lease_ttl")
    @classmethod
    def _lease(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=3):
            raise ValueError("must be at least 3s")
        return value

    @field_validator("url")
    @classmethod
    def _sqlite_path(cls, value: str, info: ValidationInfo) -> str:
        prefix = "sqlite:///"
        if value.startswith(prefix) and not value.startswith(prefix + "/"):
            rest = value[len(prefix):]
            if rest and rest != ":memory:":
                return prefix + str(_resolve(rest, info))
        if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", value):
            raise ValueError("expected a sqlite:/// or postgresql+psycopg:// URL")
        return value


class StorageSettings(_Model):
    dir: Path = Path("var")
    max_message_bytes: Size = 50 * 1000**2

    @field_validator("dir")
    @classmethod
    def _path(cls, value: Path, info: ValidationInfo) -> Path:
        resolved = _resolve(value, info)
        assert resolved is not None
        return resolved


class RulesSettings(_Model):
    path: Path = Path("rules")
    default_severity: Severity = "P3"

    @field_validator("path")
    @classmethod
    def _path(cls, value: Path, info: ValidationInfo) -> Path:
        resolved = _resolve(value, info)
        assert resolved is not None
        return resolved


class TemplatesSettings(_Model):
    path: Path | None = None

    @field_validator("path")
    @classmethod
    def _path(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _resolve(value, info)


class CustomerIdSettings(_Model):
    patterns: tuple[str, ...] = DEFAULT_CUSTOMER_ID_PATTERNS

    @field_validator("patterns")
    @classmethod
    def _compile(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for index, pattern in enumerate(patterns):
            try:
                compiled = regex.compile(pattern)
            except regex.error as exc:
                raise ValueError(f"patterns[{index}]: not a valid regex: {exc}") from exc
            if compiled.groups != 1:
                raise ValueError(f"patterns[{index}]: needs exactly one capturing group "
                                 f"(the ID), has {compiled.groups}")
        return patterns


class AgentsSettings(_Model):
    addresses: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    notify: tuple[str, ...] = ()

    @field_validator("addresses", "notify")
    @classmethod
    def _addresses(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for index, value in enumerate(values):
            if "@" not in value:
                raise ValueError(f"[{index}]: {value!r} is not a mail address")
        return tuple(v.strip().lower() for v in values)

    @field_validator("domains")
    @classmethod
    def _domains(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v.strip().lower().lstrip("@") for v in values)


class TicketsSettings(_Model):
    reopen_within: Duration = timedelta(days=14)


class EscalationSettings(_Model):
    level1: tuple[str, ...] = ()
    level2: Literal["account_manager"] | tuple[str, ...] = "account_manager"
    level3: tuple[str, ...] = ()
    warn_at: float = Field(default=0.75, gt=0, lt=1)


TargetField = Annotated[Target, BeforeValidator(parse_target)]


class TargetSettings(_Model):
    response: TargetField
    resolution: TargetField | None = None


class HolidaySettings(_Model):
    country: str | None = None
    subdivision: str | None = None
    dates: tuple[date, ...] = ()
    except_: tuple[date, ...] = Field(default=(), alias="except")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              validate_default=True)


class CalendarSettings(_Model):
    timezone: str
    hours: Literal["24x7"] | dict[str, tuple[str, ...]]
    holidays: HolidaySettings = HolidaySettings()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: Any) -> Any:
        if value == "24x7":
            return value
        for day, intervals in value.items():
            if day not in WEEKDAYS:
                raise ValueError(f"unknown day {day!r} (use {', '.join(WEEKDAYS)})")
            spans = sorted(parse_interval(i) for i in intervals)
            for (_, end), (start, _) in itertools.pairwise(spans):
                if end is None or start < end:
                    raise ValueError(f"{day}: intervals overlap")
        return value


class PolicySettings(_Model):
    calendar: str
    targets: dict[Severity, TargetSettings]


class SeverityLabel(_Model):
    name: str
    meaning: str


DEFAULT_SEVERITY_LABELS: dict[Severity, dict[str, str]] = {
    "P1": {"name": "Critical", "meaning": "complete outage or major functionality loss"},
    "P2": {"name": "Major", "meaning": "significant impairment, partial functionality"},
    "P3": {"name": "Minor", "meaning": "non-critical bug"},
    "P4": {"name": "Informative", "meaning": "request for information"},
}


class SlaSettings(_Model):
    calendars: dict[str, CalendarSettings]
    policies: dict[str, PolicySettings]
    default_policy: str = "standard"
    plans: dict[str, str] = {}
    severities: dict[Severity, SeverityLabel] = {
        k: SeverityLabel(**v) for k, v in DEFAULT_SEVERITY_LABELS.items()}

    @model_validator(mode="after")
    def _references(self) -> SlaSettings:
        for name, policy in self.policies.items():
            if policy.calendar not in self.calendars:
                raise ValueError(f"policies.{name}.calendar: no calendar named "
                                 f"{policy.calendar!r}")
        if self.default_policy not in self.policies:
            raise ValueError(f"default_policy: no policy named {self.default_policy!r}")
        for plan, policy_name in self.plans.items():
            if policy_name not in self.policies:
                raise ValueError(f"plans.{plan}: no policy named {policy_name!r}")
        return self


DEFAULT_SLA: dict[str, Any] = {
    "calendars": {"standard": {
        "timezone": "UTC",
        "hours": {d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")}}},
    "policies": {"standard": {"calendar": "standard", "targets": {
        "P1": {"response": "1 working day", "resolution": "2 working days"},
        "P2": {"response": "2 working days", "resolution": "5 working days"},
        "P3": {"response": "3 working days", "resolution": "7 working days"},
        "P4": {"response": "3 working days"}}}},
    "default_policy": "standard",
}


class NoticeSettings(_Model):
    id: str
    from_: datetime = Field(alias="from")
    until: datetime
    text: str
    match: tuple[str, ...] = ()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              validate_default=True)

    @model_validator(mode="after")
    def _check(self) -> NoticeSettings:
        if self.from_.tzinfo is None or self.until.tzinfo is None:
            raise ValueError("from and until need a time zone (e.g. 2026-12-01T08:00:00+05:30)")
        if self.until <= self.from_:
            raise ValueError("until must be after from")
        return self


class AutoReplySettings(_Model):
    enabled: bool = True
    per_sender_per_hour: int = Field(default=5, ge=0)
    team_name: str | None = None


class AnalysisSettings(_Model):
    """Parsing and classifying a backlog in worker processes while the main one stores."""

    workers: int = Field(default=1, ge=0, le=32)  # 0: all in the main process
    min_backlog: int = Field(default=50, ge=1)  # a smaller pass is analysed in place


class LoggingSettings(_Model):
    format: Literal["json", "console"] = "json"
    level: Literal["debug", "info", "warning", "error"] = "info"


class MetricsSettings(_Model):
    enabled: bool = False
    listen: str = "127.0.0.1:9464"

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"expected host:port, got {value!r}")
        return value


class Settings(_Model):
    """Everything mailbot is configured with."""

    mailboxes: tuple[MailboxSettings, ...] = ()
    smtp: SmtpSettings | None = None
    database: DatabaseSettings
    storage: StorageSettings = StorageSettings()
    rules: RulesSettings = RulesSettings()
    templates: TemplatesSettings = TemplatesSettings()
    customer_id: CustomerIdSettings = CustomerIdSettings()
    agents: AgentsSettings = AgentsSettings()
    tickets: TicketsSettings = TicketsSettings()
    escalation: EscalationSettings = EscalationSettings()
    sla: SlaSettings = SlaSettings.model_validate(DEFAULT_SLA)
    notices: tuple[NoticeSettings, ...] = ()
    auto_reply: AutoReplySettings = AutoReplySettings()
    analysis: AnalysisSettings = AnalysisSettings()
    logging: LoggingSettings = LoggingSettings()
    metrics: MetricsSettings = MetricsSettings()
    secret_key: SecretStr | None = None
    secret_key_file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _defaults_and_secrets(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for section in ("storage", "rules", "templates"):
            data.setdefault(section, {})
        storage = data.get("storage") if isinstance(data.get("storage"), dict) else {}
        database = data.get("database") if isinstance(data.get("database"), dict) else {}
        if "url" not in database:
            storage_dir = _resolve(storage.get("dir", "var"), info)
            data["database"] = {**database, "url": f"sqlite:///{storage_dir}/mailbot.db"}
        env = _context(info).get("environ", {})
        if env.get("MAILBOT_SECRET_KEY"):
            data["secret_key"] = env["MAILBOT_SECRET_KEY"]
        elif data.get("secret_key_file") and not data.get("secret_key"):
            path = _resolve(data["secret_key_file"], info)
            assert path is not None
            data["secret_key"] = _read_secret(path)
        return data

    @model_validator(mode="after")
    def _unique_mailboxes(self) -> Settings:
        names = [m.name for m in self.mailboxes]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"mailboxes: duplicate name(s): {', '.join(duplicates)}")
        return self


def settings_from_mapping(mapping: Mapping[str, Any] | None, base_dir: Path,
                          environ: Mapping[str, str] | None = None) -> Settings:
    """Validate a parsed configuration; relative paths are taken from `base_dir`."""
    context = {"base_dir": base_dir, "environ": dict(environ or {})}
    try:
        return Settings.model_validate(dict(mapping or {}), context=context)
    except ValidationError as exc:
        raise ConfigError([_describe(error) for error in exc.errors()]) from None


def load_settings(path: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate a YAML configuration file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError([f"{where}: {getattr(exc, 'problem', None) or exc}"]) from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError([f"{path}: the configuration must be a mapping of sections"])
    return settings_from_mapping(data, path.parent.resolve(), environ)


def _describe(error: Any) -> str:
    path = ""
    for part in error["loc"]:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not str(part).startswith(("function-", "literal[", "tuple[", "dict[")):
            path += f".{part}" if path else str(part)
    if error["type"] == "extra_forbidden":
        return f"{path}: unknown key"
    message = str(error["msg"]).removeprefix("Value error, ")
    key = re.match(r"([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*): ", message)
    if key and path:  # a section's own check names its key: join it to the path
        return f"{path}.{message}"
    return f"{path or '(top level)'}: {message}"
