"""Names on the wire that other programs rely on (flag keys, paths, metric and header names): defined once here."""

from __future__ import annotations

from typing import Final

DEGRADED_FLAG: Final = "degraded-mode"  # OFREP and flagd: true while the app must use the fallback model
IMAGE_MODEL_FLAG: Final = "image-model"  # OFREP and flagd: the model the app should call now
GENERATION_FLAG: Final = "generation-allowed"  # OFREP and flagd: false while a spent budget stops generation
OFREP_FLAGS_PATH: Final = "/ofrep/v1/evaluate/flags"  # POST <path>/{key} for one flag, <path> for all
REQUESTS_METRIC: Final = "nbmon_requests"  # the signal every source reads: <name>_total{model,code,error_class}
SERVICE_TIER_HEADER: Final = "x-gemini-service-tier"  # the tier Google applied to a non-streaming call
PROXY_HEADER: Final = "x-nbmon-proxy"  # on every response the proxy forwards: it counted that attempt
SERVED_MODEL_HEADER: Final = "x-nbmon-served-model"  # the model the proxy called (after steering or fallback)
ROUTE_HEADER: Final = "x-nbmon-route"  # primary | degraded | canary | fallback | stopped: what the proxy did
