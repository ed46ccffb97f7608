"""The degraded-mode flag: persistent decision state, served over OFREP and written as a flagd flag file."""

from monitor.flagstate.codec import decision_to_dict, parse_state, state_to_dict
from monitor.flagstate.flagd import FLAGD_SCHEMA, FlagdFileWriter, flagd_document
from monitor.flagstate.flags import FLAG_KEYS, Models, ResolvedFlag, flag_metadata, resolve_flags
from monitor.flagstate.ofrep import OfrepResponse, bulk_etag, dispatch, evaluate_bulk, evaluate_flag
from monitor.flagstate.state import HISTORY_LIMIT, Decision, FlagChange, FlagState, Override, Stop
from monitor.flagstate.store import (
    FlagStateCorruptError,
    FlagStatePersistError,
    FlagStore,
    FlagStoreError,
    system_clock,
)
from monitor.wire import DEGRADED_FLAG, GENERATION_FLAG, IMAGE_MODEL_FLAG, OFREP_FLAGS_PATH

__all__ = [
    "DEGRADED_FLAG",
    "FLAGD_SCHEMA",
    "FLAG_KEYS",
    "GENERATION_FLAG",
    "HISTORY_LIMIT",
    "IMAGE_MODEL_FLAG",
    "OFREP_FLAGS_PATH",
    "Decision",
    "FlagChange",
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
    "Stop",
    "bulk_etag",
    "decision_to_dict",
    "dispatch",
    "evaluate_bulk",
    "evaluate_flag",
    "flag_metadata",
    "flagd_document",
    "parse_state",
    "resolve_flags",
    "state_to_dict",
    "system_clock",
]
