"""`callcenter import` in-process: exit codes, nothing written on bad input, JSON summary."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.cli import main
from tests.test_import_support import HEADER, row, table_counts, write_csv

EMPTY = {"branches": 0, "customers": 0, "phones": 0, "policies": 0, "leads": 0, "import_runs": 0}


@pytest.fixture
def cli_env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLCENTER_DATABASE_URL", db_url)
    monkeypatch.setenv("CALLCENTER_DATA_DIR", str(tmp_path / "data"))


async def cli(*argv: str) -> int:
    # main() runs its own event loop, so it gets a thread of its own.
    return await asyncio.to_thread(main, list(argv))


@pytest.mark.usefixtures("cli_env")
async def test_json_summary_counts_every_row(
    engine: AsyncEngine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(
        tmp_path / "l.csv",
        [
            row("P1"),
            row("P2", holder="李四", holder_phone="85551234"),
            row("", holder="x"),
            row("P1"),
        ],
        encoding="gb18030",
    )
    assert await cli("import", str(path), "--kind", "renewal", "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["encoding"] == "gb18030"
    assert (summary["read"], summary["imported"], summary["updated"], summary["rejected"]) == (
        4,
        2,
        0,
        1,
    )
    assert summary["skipped"] == {"duplicate_in_file": 1}
    assert summary["errors"] == [
        {"row": 4, "column": "保单号", "value": "", "reason": "no policy number"}
    ]
    assert summary["errors_file"] == str(path) + ".errors.csv"
    assert summary["phones_to_look_up"] == {"1301": 1}

    assert await cli("import", str(path), "--kind", "renewal", "--json") == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["imported"], again["updated"], again["skipped"]) == (
        0,
        0,
        {"duplicate_in_file": 1, "unchanged": 2},
    )


@pytest.mark.usefixtures("cli_env")
async def test_text_summary_names_bad_rows(
    engine: AsyncEngine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "l.csv", [row("P1"), row("P2", expiry="2026-02-30")])
    assert await cli("import", str(path), "--kind", "trial") == 0
    captured = capsys.readouterr()
    assert "imported         1" in captured.out
    assert "row 3, 终保日期: not a date ('2026-02-30')" in captured.out
    assert captured.err == ""  # no progress bar when stderr is not a terminal


@pytest.mark.usefixtures("cli_env")
async def test_bad_input_with_json_prints_the_error_as_json(
    engine: AsyncEngine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    assert await cli("import", str(path), "--kind", "lapsed", "--json") == 2
    out = json.loads(capsys.readouterr().out)
    assert out["file"] == str(path) and "empty" in out["error"]


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    missing = write_csv(
        tmp_path / "missing.csv",
        [r[:5] + r[6:] for r in [row("P1")]],
        header=[h for h in HEADER if h != "投保人"],
    )
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    broken = write_csv(tmp_path / "broken.csv", [row(f"P{i}") for i in range(50)])
    with broken.open("ab") as fh:
        fh.write(b"P99,\x81\x20broken\n")  # neither UTF-8 nor GB18030
    header_only = write_csv(tmp_path / "header.csv", [])
    return {
        "missing column": (missing, "missing required column(s): policyholder (投保人"),
        "empty": (empty, "the file is empty"),
        "unreadable": (broken, "unreadable encoding"),
        "header only": (header_only, "no data rows"),
    }


@pytest.mark.usefixtures("cli_env")
@pytest.mark.parametrize("case", ["missing column", "empty", "unreadable", "header only"])
async def test_bad_input_exits_2_naming_the_problem_and_writes_nothing(
    engine: AsyncEngine, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    path, message = _bad_files(tmp_path)[case]
    assert await cli("import", str(path), "--kind", "renewal") == 2
    err = capsys.readouterr().err
    assert message in err
    assert "nothing was imported" in err
    assert await table_counts(engine) == EMPTY
    assert not await asyncio.to_thread(Path(str(path) + ".errors.csv").exists)


@pytest.mark.usefixtures("cli_env")
async def test_bad_mapping_file_exits_2(
    engine: AsyncEngine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "l.csv", [row("P1")])
    mapping = tmp_path / "m.toml"
    mapping.write_text("[columns\n", encoding="utf-8")
    assert await cli("import", str(path), "--kind", "renewal", "--mapping", str(mapping)) == 2
    assert "not valid TOML" in capsys.readouterr().err
    assert await table_counts(engine) == EMPTY


@pytest.mark.usefixtures("cli_env")
async def test_mapping_option_imports_another_layout(
    engine: AsyncEngine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mapping = tmp_path / "m.toml"
    mapping.write_text(
        '[columns]\npolicy_number = "单号"\nexpiry_date = "止期"\npolicyholder = "客户"\n'
        'policyholder_phone = "手机"\n',
        encoding="utf-8",
    )
    path = write_csv(
        tmp_path / "o.csv",
        [["Z1", "孙七", "13712345678", "2026-03-01"]],
        header=["单号", "客户", "手机", "止期"],
    )
    assert (
        await cli("import", str(path), "--kind", "callback", "--mapping", str(mapping), "--json")
        == 0
    )
    assert json.loads(capsys.readouterr().out)["imported"] == 1
    assert (await table_counts(engine))["leads"] == 1
