"""The services whose quotas nbmon reads (consumer_quota `service` label): one definition for every module."""

from __future__ import annotations

from typing import Final

GEMINI_SERVICE: Final = "generativelanguage.googleapis.com"
VERTEX_SERVICE: Final = "aiplatform.googleapis.com"
