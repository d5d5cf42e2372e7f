"""The `callcenter` command line.

Each sub-command lives in its own module under `callcenter.commands` and exposes
`register(subparsers)`; modules are discovered here so that adding a command never
means editing a shared list.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Sequence

from callcenter import commands
from callcenter.ops.logs import configure_logging

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callcenter",
        description="Outbound dialer and CRM integration for the policy-renewal desk.",
    )
    parser.add_argument("--config", help="TOML settings file (overrides CALLCENTER_CONFIG)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    # Before the settings are read (they may fail to load): the format from the environment;
    # `serve` and `demo` configure again with the settings' secrets (callcenter.ops.logs).
    configure_logging(level, os.environ.get("CALLCENTER_OPS__LOG_FORMAT", "auto"))
    if args.config:
        os.environ["CALLCENTER_CONFIG"] = args.config
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
