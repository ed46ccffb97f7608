"""The `nbmon` command. Each subcommand lives in its own module, imported only when that command runs (or its
--help is asked for): `nbmon --help` imports none of them, so every call starts fast."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Command:
    help: str
    module: str  # where `run` lives (and `arguments`, unless `arguments_module` says otherwise)
    arguments: str | None
    run: str
    arguments_module: str | None = None  # a light module, when the command's own is heavy to import
    extra: str | None = None  # the pip extra that installs what the command needs beyond the base install


COMMANDS: dict[str, Command] = {
    "demo": Command(
        "a scripted day through the whole loop (simulator, load, daemon) in ~2 minutes",
        "monitor.demo.cli",
        "add_arguments",
        "run",
        "monitor.demo.args",
        extra="all",
    ),
    "run": Command(
        "run the sidecar daemon: read the signal, evaluate, serve the flag",
        "monitor.daemon.cli",
        "add_config_argument",
        "run",
        extra="daemon",
    ),
    "check-config": Command(
        "validate the daemon configuration as run would; every error with its key",
        "monitor.daemon.cli",
        "add_config_argument",
        "check_config",
        extra="daemon",
    ),
    "flag": Command(
        "show, force or clear the degraded-mode flag of a running daemon",
        "monitor.daemon.cli",
        "add_flag_arguments",
        "flag",
    ),
    "models": Command(
        "the model catalog as your config resolves it: roles, lifecycle, prices",
        "monitor.catalog.cli",
        "add_arguments",
        "run",
    ),
    "quota": Command(
        "one-off table of Gemini quota usage versus limits (Cloud Monitoring)",
        "monitor.quota.cli",
        "add_arguments",
        "run",
        "monitor.quota.args",
        extra="daemon,cli",
    ),
    "proxy": Command(
        "pass-through proxy for apps in any language: watched like the shim, steered and retried on request",
        "monitor.proxy.cli",
        "add_arguments",
        "run",
        extra="proxy",
    ),
    "simulate": Command(
        "serve the Gemini API simulator (fault profiles, scenarios)", "monitor.simulator.cli", "add_arguments", "run"
    ),
    "classify": Command(
        "classify one HTTP status + body into an error class", "monitor.cli", "add_classify_arguments", "classify"
    ),
    "version": Command("print nbmon and google-genai versions", "monitor.cli", None, "version"),
}


def version(_args: argparse.Namespace) -> int:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        own = package_version("nbmon")
    except PackageNotFoundError:
        own = "0+unknown"
    try:
        genai = package_version("google-genai")
    except PackageNotFoundError:
        genai = "not installed"
    print(f"nbmon {own} (google-genai {genai})")
    return 0


def add_classify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("status", type=int, help="HTTP status code, e.g. 429")
    parser.add_argument("body", help="file with the response body, or - for stdin")
    parser.add_argument("--header", action="append", default=[], help="a response header, 'Name: value'")
    parser.add_argument("--text-only", action="store_true", help="the call did not ask for an image")


def classify(args: argparse.Namespace) -> int:
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


# Top-level packages of the optional extras, for the hint when a command runs on an install without them.
_EXTRA_OF_MODULE = {
    "aiohttp": "daemon",
    "apscheduler": "daemon",
    "google.api_core": "daemon",
    "google.cloud": "daemon",
    "grpc": "daemon",
    "slack_sdk": "daemon",
    "yaml": "daemon",
    "rich": "cli",
}


def missing_extra(error: ModuleNotFoundError, command: Command) -> str | None:
    """The one-line hint for a dependency of an extra that is not installed; None for any other missing module."""
    name = error.name or ""
    extra = next((e for m, e in _EXTRA_OF_MODULE.items() if name == m or name.startswith(m + ".")), None)
    if extra is None:
        return None
    wanted = command.extra or extra
    return f"needs {name}, which the '{extra}' extra installs: pip install 'nbmon[{wanted}]'"


def _lazy(command: Command) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        function: Callable[[argparse.Namespace], int] = getattr(importlib.import_module(command.module), command.run)
        return function(args)

    run.__name__ = command.run
    return run


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with `argv`, only the command it names gets its arguments (and its module imported)."""
    parser = argparse.ArgumentParser(prog="nbmon", description="Observability for Gemini image generation.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((arg for arg in argv if not arg.startswith("-")), None) if argv is not None else None
    for name, command in COMMANDS.items():
        sub = commands.add_parser(name, help=command.help)
        if command.arguments is not None and (argv is None or name == chosen):
            module = importlib.import_module(command.arguments_module or command.module)
            add: Callable[[argparse.ArgumentParser], Any] = getattr(module, command.arguments)
            add(sub)
        sub.set_defaults(func=_lazy(command))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Every error is one line on stderr and an exit code: 2 for bad input, 1 for a failure, 130 for Ctrl-C.
    NBMON_DEBUG=1 shows the traceback of an unexpected one."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(arguments).parse_args(arguments)
    except ModuleNotFoundError as exc:  # a command's arguments module needs an extra
        chosen = next((arg for arg in arguments if not arg.startswith("-")), "")
        hint = missing_extra(exc, COMMANDS[chosen]) if chosen in COMMANDS else None
        if hint is None:
            raise
        print(f"nbmon: {chosen}: {hint}", file=sys.stderr)
        return 2
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if os.environ.get("NBMON_DEBUG"):
            raise
        hint = missing_extra(exc, COMMANDS[args.command]) if isinstance(exc, ModuleNotFoundError) else None
        if hint is not None:
            print(f"nbmon: {args.command}: {hint}", file=sys.stderr)
            return 2
        from monitor.logs import redact_text

        print(f"nbmon: {args.command}: unexpected {type(exc).__name__}: {redact_text(str(exc))[:300]}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    raise SystemExit(main())
