"""The degraded-mode flag: persistent decision state, served over OFREP and written as a flagd flag file."""

from monitor.flagstate.flagd import FLAGD_SCHEMA, FlagdFileWriter, flagd_document
from monitor.flagstate.flags import (
    DEGRADED_FLAG,
    FLAG_KEYS,
    IMAGE_MODEL_FLAG,
    Models,
    ResolvedFlag,
    flag_metadata,
    resolve_flags,
)
from monitor.flagstate.ofrep import OFREP_FLAGS_PATH, OfrepResponse, bulk_etag, dispatch, evaluate_bulk, evaluate_flag
from monitor.flagstate.state import (
    HISTORY_LIMIT,
    Decision,
    FlagState,
    FlagStateCorruptError,
    FlagStatePersistError,
    FlagStore,
    FlagStoreError,
    Override,
    Transition,
    system_clock,
)

__all__ = [
    "DEGRADED_FLAG",
    "FLAGD_SCHEMA",
    "FLAG_KEYS",
    "HISTORY_LIMIT",
    "IMAGE_MODEL_FLAG",
    "OFREP_FLAGS_PATH",
    "Decision",
    "FlagState",
    "FlagStateCorruptError",
    "FlagStatePersistError",
    "FlagStore",
    "FlagStoreError",
    "FlagdFileWriter",
    "Models",
    "OfrepResponse",
    "Override",
    "ResolvedFlag",
    "Transition",
    "bulk_etag",
    "dispatch",
    "evaluate_bulk",
    "evaluate_flag",
    "flag_metadata",
    "flagd_document",
    "resolve_flags",
    "system_clock",
]
