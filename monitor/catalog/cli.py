"""`nbmon models`: the model catalog as a config resolves it: roles, lifecycle on a day, sizes, prices, sources."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from monitor.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        "-c",
        default=os.environ.get("NBMON_CONFIG") or os.environ.get("NBMON_CONFIG_FILE"),
        help="TOML or YAML file with [models] (default: $NBMON_CONFIG, else $NBMON_CONFIG_FILE, else the defaults)",
    )
    parser.add_argument("--date", default=None, help="lifecycle on this day, YYYY-MM-DD (default: today, UTC)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="one JSON document instead of a table")
    output.add_argument("--markdown", action="store_true", help="the catalog as docs/models.md shows it")


def run(args: argparse.Namespace) -> int:
    from monitor.config import config_from_document, read_document

    try:
        day = date.fromisoformat(args.date) if args.date else datetime.now(UTC).date()
    except ValueError:
        print(f"nbmon: --date: {args.date!r} is not a date (YYYY-MM-DD)", file=sys.stderr)
        return 2
    try:
        document = read_document(args.config) if args.config else {}
        base = Path(args.config).parent if args.config else None
        config = config_from_document(document, base_dir=base, as_of=day)
    except ConfigError as exc:
        print(f"nbmon: config error: {exc}", file=sys.stderr)
        return 2
    rows = [_row(spec, config, day) for spec in config.catalog.specs]
    if args.json:
        document = {
            "as_of": day.isoformat(),
            "primary": config.primary_model,
            "fallback": config.fallback_model,
            "models": rows,
            "notes": [note.message for note in config.lifecycle_notes(day)],
        }
        print(json.dumps(document, indent=2))
        return 0
    if args.markdown:
        print(markdown(config.catalog.specs))
        return 0
    _print_table(rows)
    print(f"\nprimary {config.primary_model}, fallback {config.fallback_model}; lifecycle as of {day}")
    for note in config.lifecycle_notes(day):
        print(f"warning: {note.key}: {note.message}")
    return 0


def _row(spec: Any, config: Any, day: date) -> dict[str, Any]:
    return {
        "id": spec.id,
        "family": spec.family,
        "role": config.role(spec.id).value,
        "lifecycle": spec.lifecycle(day).value,
        "image_sizes": list(spec.image_sizes),
        "prices_usd": {tier: {size: spec.price(size, tier) for size in _sizes(spec)} for tier in spec.service_tiers},
        "released": _iso(spec.released),
        "deprecated": _iso(spec.deprecated),
        "shutdown": _iso(spec.shutdown),
        "replacement": spec.replacement,
        "routed_to": spec.routed_to,
        "aliases": list(spec.aliases),
        "sources": {fact: {"url": s.url, "as_of": s.as_of.isoformat()} for fact, s in spec.sources.items()},
    }


def _sizes(spec: Any) -> list[str]:
    return list(spec.image_sizes) or ["default"]


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None


def _print_table(rows: list[dict[str, Any]]) -> None:
    header = ("model", "family", "role", "lifecycle", "standard USD per image", "shutdown", "replacement")
    table = [header]
    for row in rows:
        prices = row["prices_usd"].get("standard", {})
        shown = " ".join(f"{size}={price:g}" for size, price in prices.items() if price is not None) or "-"
        table.append(
            (
                row["id"],
                row["family"] or "-",
                row["role"],
                row["lifecycle"],
                shown,
                row["shutdown"] or "-",
                row["replacement"] or "-",
            )
        )
    widths = [max(len(str(line[i])) for line in table) for i in range(len(header))]
    for line in table:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def markdown(specs: Any) -> str:
    """The catalog as a Markdown table, with each date's and price's source and as-of date."""
    lines = [
        "| model | family | line | sizes | standard USD per image | released | deprecated | shutdown | replacement |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for spec in specs:
        prices = ", ".join(f"{size} {price:g}" for size, price in spec.prices_usd.items()) or "-"
        cells = [
            f"`{spec.id}`",
            spec.family or "-",
            spec.model_tier or "-",
            ", ".join(spec.image_sizes) or "none (fixed)",
            _sourced(prices, spec.sources.get("prices")),
            *(
                _sourced(_iso(getattr(spec, f)) or "-", spec.sources.get(f))
                for f in ("released", "deprecated", "shutdown")
            ),
            f"`{spec.replacement}`" if spec.replacement else "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _sourced(text: str, source: Any) -> str:
    return f"[{text}]({source.url}) ({source.as_of})" if source is not None and text != "-" else text
