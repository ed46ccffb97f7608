"""The arguments of `nbmon quota`, apart from the command (which imports gRPC): `nbmon quota --help` stays fast."""

from __future__ import annotations

import argparse
import os

from monitor.quota.services import GEMINI_SERVICE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", "-p", action="append", required=True, help="Google Cloud project id (repeatable)")
    parser.add_argument(
        "--service",
        action="append",
        help=f"consumer_quota service (repeatable; default {GEMINI_SERVICE}; aiplatform.googleapis.com for Vertex)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--key-file",
        default=os.environ.get("NBMON_QUOTA_KEY_FILE"),
        help="service-account key file (default: $NBMON_QUOTA_KEY_FILE, else Application Default Credentials)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds for each project's fetch (default 30)")
