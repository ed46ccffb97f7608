"""The sidecar daemon: `nbmon run` (sources -> rules -> the degraded-mode flag, served over HTTP)."""
