"""The `nbmon` command: simulate, demo, classify, version."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from monitor.logs import redact_text
from monitor.shim import genai_version


def _version(_args: argparse.Namespace) -> int:
    from importlib.metadata import PackageNotFoundError, version

    try:
        own = version("nbmon")
    except PackageNotFoundError:
        own = "0+unknown"
    print(f"nbmon {own} (google-genai {genai_version() or 'not installed'})")
    return 0


def _classify(args: argparse.Namespace) -> int:
    """Classify one saved response: handy when triaging a body pasted from a log."""
    from monitor.taxonomy import classify_http

    try:
        body = sys.stdin.buffer.read() if args.body == "-" else Path(args.body).read_bytes()
    except OSError as exc:
        print(f"nbmon: classify: cannot read {args.body}: {exc.strerror}", file=sys.stderr)
        return 2
    headers: dict[str, str] = {}
    for header in args.header:
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            print(f"nbmon: classify: --header {header!r} is not 'Name: value'", file=sys.stderr)
            return 2
        headers[name.strip()] = value.strip()
    outcome = classify_http(args.status, body, headers or None, image_expected=not args.text_only)
    result = asdict(outcome)
    del result["code_label"]  # derived from http_code; the output keeps the fields it always had
    result["error_class"] = outcome.error_class.value
    result["category"] = outcome.category.value
    result["quota"] = [{**asdict(v), "window": v.window.value} for v in outcome.quota]
    print(json.dumps(result, indent=2))
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from monitor.simulator import cli

    return cli.run(args)


def _demo(args: argparse.Namespace) -> int:
    from monitor import demo

    return demo.run(args)


def build_parser() -> argparse.ArgumentParser:
    from monitor import demo
    from monitor.simulator import cli as simulator_cli

    parser = argparse.ArgumentParser(prog="nbmon", description="Observability for Gemini image generation.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    simulate = commands.add_parser("simulate", help="serve the Gemini API simulator (fault profiles, scenarios)")
    simulator_cli.add_arguments(simulate)
    simulate.set_defaults(func=_simulate)

    demo_parser = commands.add_parser(
        "demo", help="a scripted day through the whole loop (simulator, load, daemon) in ~2 minutes"
    )
    demo.add_arguments(demo_parser)
    demo_parser.set_defaults(func=_demo)

    classify = commands.add_parser("classify", help="classify one HTTP status + body into an error class")
    classify.add_argument("status", type=int, help="HTTP status code, e.g. 429")
    classify.add_argument("body", help="file with the response body, or - for stdin")
    classify.add_argument("--header", action="append", default=[], help="a response header, 'Name: value'")
    classify.add_argument("--text-only", action="store_true", help="the call did not ask for an image")
    classify.set_defaults(func=_classify)

    from monitor.daemon import cli as daemon_cli

    run = commands.add_parser("run", help="run the sidecar daemon: read the signal, evaluate, serve the flag")
    daemon_cli.add_config_argument(run)
    run.set_defaults(func=daemon_cli.run)

    check = commands.add_parser("check-config", help="validate the daemon configuration; every error with its key")
    daemon_cli.add_config_argument(check)
    check.set_defaults(func=daemon_cli.check_config)

    flag = commands.add_parser("flag", help="show, force or clear the degraded-mode flag of a running daemon")
    daemon_cli.add_flag_arguments(flag)
    flag.set_defaults(func=daemon_cli.flag)

    from monitor.quota import cli as quota_cli

    quota = commands.add_parser("quota", help="one-off table of Gemini quota usage versus limits (Cloud Monitoring)")
    quota_cli.add_arguments(quota)
    quota.set_defaults(func=quota_cli.run)

    from monitor.catalog import cli as models_cli

    models = commands.add_parser(
        "models", help="the model catalog as your config resolves it: roles, lifecycle, prices"
    )
    models_cli.add_arguments(models)
    models.set_defaults(func=models_cli.run)

    version = commands.add_parser("version", help="print nbmon and google-genai versions")
    version.set_defaults(func=_version)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Every error is one line on stderr and an exit code: 2 for bad input, 1 for a failure, 130 for Ctrl-C.
    NBMON_DEBUG=1 shows the traceback of an unexpected one."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if os.environ.get("NBMON_DEBUG"):
            raise
        print(f"nbmon: {args.command}: unexpected {type(exc).__name__}: {redact_text(str(exc))[:300]}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    raise SystemExit(main())
