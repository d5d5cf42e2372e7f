"""CLI sub-commands: one module per command group, each with `register(subparsers)`.

`register` adds its parser(s) and sets `func=<callable(args) -> int>` as default; async
commands run themselves with `asyncio.run`. Exit codes: 0 ok, 1 failure, 2 bad input.
"""
