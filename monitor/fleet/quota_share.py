"""The lease holder's quota readings in Redis, for the replicas that do not poll Cloud Monitoring.

One key per fleet project (`nbmon:{project}:quota:readings`): a JSON document with the readings, when they were
polled, which projects that poll fetched, the poller's last success and who wrote it. Written only while the
writer's id is in the lease key (one Lua script checks it: a deposed holder cannot overwrite its successor), with a
TTL of a few quota intervals, so a fleet that stopped polling leaves nothing that looks current.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from monitor.quota.model import LimitStatus, QuotaReading, Window
from monitor.quota.poller import QuotaSnapshot

if TYPE_CHECKING:
    import redis

__all__ = ["FORMAT", "Published", "QuotaShare", "decode", "encode"]
FORMAT = 1  # a reader ignores documents of another format (a fleet mid-upgrade)
_FIELDS = tuple(f.name for f in dataclasses.fields(QuotaReading))
_TEXT = ("project", "service", "location", "quota_metric", "limit_name")
_NUMBERS = ("usage", "limit", "usage_today", "seconds_until_reset", "projected_usage_at_reset")
_TYPES: dict[str, Any] = {  # field -> its type; None: a time (ISO 8601, aware)
    **dict.fromkeys(_TEXT, str),
    **dict.fromkeys(_NUMBERS, float),
    **dict.fromkeys(("exceeded", "projected_exhaustion"), bool),
    **dict.fromkeys(("as_of", "reset_at", "projected_exhaustion_at"), None),
    "window": Window,
    "status": LimitStatus,
}
_JSON_TYPES: dict[Any, type | tuple[type, ...]] = {float: (int, float), bool: bool}  # the others are strings
_PUBLISH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Published:
    snapshot: QuotaSnapshot  # no reconcile: each replica compares with its own shim's counts
    last_success: float | None  # the holder's poller: the oldest of the projects' last successes (Unix s)
    holder: str


def encode(snapshot: QuotaSnapshot, last_success: float | None, holder: str) -> str:
    readings = [{name: _plain(getattr(reading, name)) for name in _FIELDS} for reading in snapshot.readings]
    return json.dumps(
        {
            "format": FORMAT,
            "holder": holder,
            "polled_at": _plain(snapshot.polled_at),
            "fresh_projects": sorted(snapshot.fresh_projects),
            "last_success": last_success,
            "readings": readings,
        },
        separators=(",", ":"),
    )


def decode(text: str | bytes) -> Published:
    """The document `encode` wrote; ValueError when it is not one (or of another format)."""
    try:
        document = json.loads(text)
        if document.get("format") != FORMAT:
            raise ValueError(f"format {document.get('format')!r}, not {FORMAT}")
        readings = tuple(_reading(item) for item in document["readings"])
        polled_at = _date(document["polled_at"])
        last = document["last_success"]
        snapshot = QuotaSnapshot(readings, polled_at, frozenset(str(p) for p in document["fresh_projects"]))
        return Published(snapshot, None if last is None else float(last), str(document["holder"]))
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a published quota snapshot: {type(exc).__name__}: {exc}") from exc


class QuotaShare:
    """Publish (the holder) and read (the others). Redis errors are the caller's to count: they raise."""

    def __init__(self, client: redis.Redis, key: str, lease_key: str, ttl_s: float) -> None:
        self.key, self._lease_key = key, lease_key
        self._client = client
        self._ttl_ms = max(round(ttl_s * 1000), 1)
        self._publish = client.register_script(_PUBLISH)

    def publish(self, snapshot: QuotaSnapshot, last_success: float | None, holder: str) -> bool:
        """False when `holder` no longer holds the lease: nothing was written."""
        document = encode(snapshot, last_success, holder)
        return bool(self._publish(keys=[self._lease_key, self.key], args=[holder, document, self._ttl_ms]))

    def read(self) -> Published | None:
        """None when nothing is published (never, or it expired)."""
        raw = self._client.get(self.key)
        return None if raw is None else decode(raw)


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Window | LimitStatus):
        return value.value
    return value


def _date(value: object) -> datetime | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        raise ValueError("a naive time")
    return moment


def _reading(item: dict[str, Any]) -> QuotaReading:
    """Each field back to its type, whatever the JSON said: a float is a float, a flag a bool."""
    values: dict[str, Any] = {}
    for name, value in item.items():
        kind = _TYPES.get(name, ...)
        if kind is ...:
            continue  # a field a newer writer added
        if kind is None:
            values[name] = _date(value)
        elif value is None and kind is float:
            values[name] = None
        elif not isinstance(value, _JSON_TYPES.get(kind, str)) or isinstance(value, bool) is not (kind is bool):
            raise TypeError(f"{name}: {type(value).__name__}")
        else:
            values[name] = kind(value)
    return QuotaReading(**values)
