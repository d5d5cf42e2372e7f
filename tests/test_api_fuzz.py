"""Schema-driven fuzzing: schemathesis reads the service's own OpenAPI document and throws
generated requests (valid and invalid) at every operation of the fully wired service, as a
supervisor and as a specialist, on SQLite and PostgreSQL. It passes only with no server
error (5xx), no undeclared status code and every response matching its declared schema.

The service listens on a loopback port in this test's event loop (tests/test_api_support.py:
its clock stands still outside the calling windows, so starting a campaign dials nobody);
schemathesis runs as a separate process, its client being synchronous.

Where the time goes (profiled, docs/benchmarks.md): schemathesis's own process, not the
service. The deterministic coverage phase (every parameter's boundaries and negative cases,
~2,400 requests a run) is kept whole; the random fuzzing phase draws 15 examples an operation
(25 until issue 12), about a fifth less CPU a run; FUZZ_EXAMPLES=200 digs deeper locally.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callcenter.openapi import SUPERVISOR_ONLY
from tests.test_api_support import WiredApi, wired_api

# Random examples per operation (64 operations), after the coverage phase's deterministic
# ones. Raise locally (FUZZ_EXAMPLES=200) to dig deeper.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "15"))
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance,negative_data_rejection"
)


@pytest.fixture
async def target(
    db_url: str, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> AsyncIterator[WiredApi]:
    async with wired_api(db_url, engine, sessions, tmp_path) as api:
        yield api


async def _schemathesis(target: WiredApi, who: str, tmp_path: Path) -> tuple[int, str]:
    st = Path(sys.executable).with_name("st")
    proc = await asyncio.create_subprocess_exec(
        str(st),
        "run",
        f"{target.url}/api/openapi.json",
        "--checks",
        CHECKS,
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        "20261206",
        "--workers",
        "1",
        "--phases",
        "examples,coverage,fuzzing",
        "--suppress-health-check",
        "all",
        "--request-timeout",
        "30",
        "--header",
        f"Authorization: Bearer {target.tokens[who]}",
        "--output-truncate",
        "true",
        # A specialist gets 403 from these whatever she sends (checked before the input, and
        # for every one of them by test_api_contract): fuzzing them would test one branch.
        *(["--exclude-by", f"/{SUPERVISOR_ONLY} == true"] if who == "specialist" else []),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"},
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode("utf-8", "replace")


@pytest.mark.timeout(600)
# Each role once, on a different database (the four pairs cost minutes of `make test`).
@pytest.mark.parametrize(
    ("db_url", "who"), [("postgresql", "supervisor"), ("sqlite", "specialist")], indirect=["db_url"]
)
async def test_fuzzing_the_api_finds_no_server_error_and_no_schema_violation(
    target: WiredApi, who: str, tmp_path: Path
) -> None:
    code, out = await _schemathesis(target, who, tmp_path)
    assert code == 0, out[-12000:]
    tested = re.search(r"Tested:\s+(\d+)", out)
    # Every operation was exercised, not skipped for an unreadable schema (the specialist's
    # run leaves out the ~30 she is always refused).
    assert tested is not None and int(tested.group(1)) >= 30, out[-4000:]
