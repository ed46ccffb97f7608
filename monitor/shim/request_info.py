"""What the shim reads from a generate call's arguments: model, modalities, image config.

Never reads prompt or image content unless capture_content is on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from monitor import labels
from monitor.catalog import SERVICE_TIERS
from monitor.config import DEFAULT_IMAGE_SIZE, IMAGE_SIZES, ShimConfig
from monitor.shim import semconv

_MAX_CAPTURED_PROMPT = 2000


@dataclass(slots=True)  # not frozen: built on every call, and frozen __init__ costs a setattr per field
class RequestInfo:
    model: str | None  # bare model ID as requested
    provider: str
    image_expected: bool
    image_size: str  # bounded label value
    aspect_ratio: str | None
    server_address: str | None
    server_port: int | None
    prompt: str | None  # only when capture_content is on
    service_tier: str | None = None  # requested (config.service_tier); None: the default, standard


def _field(obj: Any, snake: str, camel: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):  # a plain dict (not the Mapping ABC): this runs on every call
        return obj.get(snake, obj.get(camel))
    return getattr(obj, snake, None)


def read_request(models: Any, kwargs: Mapping[str, Any], config: ShimConfig) -> RequestInfo:
    """`models` is the SDK's Models/AsyncModels instance; kwargs are the call's keyword arguments."""
    model = labels.model_id(kwargs.get("model"))
    gen_config = kwargs.get("config")
    modalities = _field(gen_config, "response_modalities", "responseModalities")
    if modalities:
        image_expected = False
        for modality in modalities:  # a loop, not any(<generator>): one function fewer per call
            if str(getattr(modality, "value", modality)).upper() == "IMAGE":
                image_expected = True
                break
    else:
        image_expected = config.is_image_model(model)
    image_config = _field(gen_config, "image_config", "imageConfig")
    size = _field(image_config, "image_size", "imageSize") or DEFAULT_IMAGE_SIZE
    aspect = _field(image_config, "aspect_ratio", "aspectRatio")
    tier = _field(gen_config, "service_tier", "serviceTier")
    api_client = getattr(models, "_api_client", None)
    vertex = bool(getattr(api_client, "vertexai", False))
    address, port = _server(api_client)
    return RequestInfo(
        model=model,
        provider=semconv.PROVIDER_VERTEX if vertex else semconv.PROVIDER_GEMINI,
        image_expected=image_expected,
        image_size=size if size in IMAGE_SIZES else labels.OTHER,
        aspect_ratio=aspect if isinstance(aspect, str) and len(aspect) <= 8 else None,
        server_address=address,
        server_port=port,
        prompt=_prompt_text(kwargs.get("contents")) if config.capture_content else None,
        service_tier=None if tier is None else _tier_label(tier),
    )


def _tier_label(raw: object) -> str:
    text = str(getattr(raw, "value", raw)).lower()
    return text if text in SERVICE_TIERS else ("standard" if text == "unspecified" else labels.OTHER)


_servers: dict[str, tuple[str | None, int | None]] = {}


def _server(api_client: Any) -> tuple[str | None, int | None]:
    options = getattr(api_client, "_http_options", None)
    base_url = getattr(options, "base_url", None)
    if not isinstance(base_url, str):
        return None, None
    server = _servers.get(base_url)
    if server is None:
        parts = urlsplit(base_url)
        server = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
        if len(_servers) < 64:  # a handful of base URLs per process; never grow without bound
            _servers[base_url] = server
    return server


def _prompt_text(contents: Any) -> str | None:
    texts: list[str] = []
    items = contents if isinstance(contents, list) else [contents]
    for item in items:
        if isinstance(item, str):
            texts.append(item)
            continue
        for part in _field(item, "parts", "parts") or ():
            text = part if isinstance(part, str) else _field(part, "text", "text")
            if isinstance(text, str):
                texts.append(text)
    joined = "\n".join(texts)
    return joined[:_MAX_CAPTURED_PROMPT] if joined else None


def read_json_request(
    model: str | None, body: Mapping[str, Any], config: ShimConfig, server: tuple[str | None, int | None]
) -> RequestInfo:
    """The same, from a REST request body (`generationConfig`, top-level `serviceTier`): what the proxy reads."""
    generation = body.get("generationConfig")
    settings: dict[str, Any] = dict(generation) if isinstance(generation, Mapping) else {}
    if "serviceTier" in body:
        settings["serviceTier"] = body["serviceTier"]
    info = read_request(None, {"model": model, "config": settings, "contents": body.get("contents")}, config)
    info.server_address, info.server_port = server
    return info
