"""Constants the tests repeat: the repository root, the catalog's two models, the SDK's image request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from google.genai import types

ROOT = Path(__file__).resolve().parents[2]
PRO = "gemini-3-pro-image"
FLASH = "gemini-nano-banana-2.1"
API_KEY = "AIzaSyTESTKEY_0123456789abcdefghijklmnopq"  # shaped like a real key, to prove redaction
IMAGE_CONFIG: types.GenerateContentConfigDict = {
    "response_modalities": ["TEXT", "IMAGE"],
    "image_config": {"image_size": "1K", "aspect_ratio": "16:9"},
}
# The same request as the REST API takes it (what the simulator tests post with httpx), and the key header.
IMAGE_REQUEST: dict[str, Any] = {
    "contents": [{"role": "user", "parts": [{"text": "a banana wearing sunglasses"}]}],
    "generationConfig": {"responseModalities": ["TEXT", "IMAGE"]},
}
KEY_HEADER = {"x-goog-api-key": "test-key"}
