"""One instance of a metrics class per prometheus_client registry: instrument/uninstrument/instrument (or two
generators on one registry) never register a name twice."""

from __future__ import annotations

import threading
import weakref
from typing import Any, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry

_instances: weakref.WeakKeyDictionary[CollectorRegistry, dict[object, Any]] = weakref.WeakKeyDictionary()
_instances_lock = threading.RLock()  # a class made here may ask for another (ShimMetrics -> InternalErrors)
_T = TypeVar("_T")


def per_registry(cls: type[_T], registry: CollectorRegistry | None, **options: Any) -> _T:
    """The instance of `cls` for `registry`, made on the first call (with `options`) and shared after."""
    registry = registry if registry is not None else REGISTRY
    with _instances_lock:
        per_type = _instances.setdefault(registry, {})
        if cls not in per_type:
            per_type[cls] = cls(registry, **options)  # type: ignore[call-arg]
        return per_type[cls]  # type: ignore[no-any-return]
