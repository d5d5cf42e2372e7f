"""The import writer on SQLite and PostgreSQL: merges, updates, skips, idempotence."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_sync.exceptions import ImportInputError
from crm_sync.import_report import ImportSummary
from crm_sync.models import Branch, Customer, ImportRun, Lead, LeadStatus, Phone, Policy
from crm_sync.services import import_file, phones_to_look_up
from schedules.timeline import TimelineRules, due_day
from tests.test_import_support import HEADER, count, row, table_counts, write_csv, write_xlsx

NOW = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
TODAY = date(2026, 1, 5)


def read_report(path: str) -> list[dict[str, str]]:
    # Whole, not by lines: a rejected value may itself hold a line break.
    text = Path(path).read_bytes().decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text, newline="")))


async def run(
    engine: AsyncEngine, path: Path, kind: str = "renewal", **kw: object
) -> ImportSummary:
    return await import_file(engine, path, kind, now=NOW, today=TODAY, **kw)  # type: ignore[arg-type]


async def test_rows_become_policies_customers_phones_and_leads(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "l.csv",
        [
            row("P1", holder="王伟", holder_phone="13812345678", expiry="2026-02-28"),
            row("P2", holder="李娜", holder_phone="0311-85551234转808", branch="1302 唐山分公司"),
        ],
    )
    s = await run(engine, path, batch_size=1)
    assert (s.read, s.imported, s.updated, s.rejected, dict(s.skipped)) == (2, 2, 0, 0, {})
    assert await table_counts(engine) == {
        "branches": 2,
        "customers": 2,
        "phones": 2,
        "policies": 2,
        "leads": 2,
        "import_runs": 1,
    }
    async with engine.connect() as conn:
        lead = (
            await conn.execute(
                select(Lead.status, Lead.due_on, Phone.e164, Phone.extension)
                .join(Policy, Policy.id == Lead.policy_id)
                .join(Phone, Phone.id == Lead.phone_id)
                .where(Policy.policy_number == "P1")
            )
        ).one()
        ext = (
            await conn.execute(
                select(Phone.e164, Phone.extension, Phone.kind).where(Phone.raw.like("0311%"))
            )
        ).one()
        run_row = (await conn.execute(select(ImportRun.kind, ImportRun.summary))).one()
    assert tuple(lead) == (LeadStatus.NEW.value, date(2026, 2, 3), "+8613812345678", None)
    assert tuple(ext) == ("+8631185551234", "808", "landline")
    assert run_row.kind == "renewal" and run_row.summary["imported"] == 2
    assert run_row.summary["phones_to_look_up_files"] == s.lookup_files == []


async def test_reimporting_the_same_file_changes_nothing(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    rows = [row(f"P{i}", holder=f"客户{i}", holder_phone=f"1381234{i:04d}") for i in range(30)]
    rows.append(row("BAD", expiry="not a date"))
    path = write_csv(tmp_path / "l.csv", rows)
    first = await run(engine, path, batch_size=7)
    before = await table_counts(engine)
    second = await run(engine, path, batch_size=7)
    after = await table_counts(engine)
    assert (first.imported, first.rejected) == (30, 1)
    assert (second.imported, second.updated, second.rejected) == (0, 0, 1)
    assert second.skipped == {"unchanged": 30}
    assert after == before | {"import_runs": 2}


async def test_same_customer_on_two_rows_is_merged(engine: AsyncEngine, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "l.csv",
        [
            row("P1", holder="张伟", holder_phone="13812345678", plate="冀A·11111"),
            row("P2", holder="张伟", holder_phone="13812345678", plate="冀A·22222"),
            row("P3", holder="张伟", holder_phone="13999999999", plate="冀A·33333"),
        ],
    )
    await run(engine, path)
    assert await count(engine, Customer) == 2  # same name, other number: another 张伟
    assert await count(engine, Policy) == 3


async def test_fleet_lead_dials_the_insureds_own_number(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "l.csv",
        [
            row(
                "F1",
                holder="顺达物流有限公司",
                holder_phone="0311-85551234",
                insured="刘强",
                insured_phone="13912345678",
                fleet="顺达物流",
            ),
            row(
                "F2",
                holder="顺达物流有限公司",
                holder_phone="0311-85551234",
                insured="赵四",
                fleet="是",
            ),
        ],
    )
    s = await run(engine, path)
    async with engine.connect() as conn:
        dialled = dict(
            (
                await conn.execute(
                    select(Policy.policy_number, Phone.raw)
                    .join(Lead, Lead.policy_id == Policy.id)
                    .join(Phone, Phone.id == Lead.phone_id)
                )
            ).all()
        )
        fleet = (
            await conn.execute(select(Policy.is_fleet).where(Policy.policy_number == "F1"))
        ).scalar()
    assert dialled == {"F1": "13912345678", "F2": "0311-85551234"}
    assert fleet is True
    # F2's insured has no number of their own: the branch is asked to look it up.
    assert s.lookup == {"1301": 1}
    [report] = s.lookup_files
    lines = read_report(report)
    assert [(r["policy_number"], r["reason"]) for r in lines] == [
        ("F2", "fleet policy: the insured's own number is missing")
    ]


async def test_invalid_numbers_are_stored_flagged_and_listed_per_branch(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "l.csv",
        [
            row("P1", holder_phone="85551234"),
            row("P2", holder="李四", holder_phone="1381234", branch="1302 唐山分公司"),
            row("P3", holder="王五", holder_phone="13812345670"),
        ],
    )
    s = await run(engine, path)
    async with engine.connect() as conn:
        flagged = (
            await conn.execute(
                select(Phone.raw, Phone.invalid_reason).where(Phone.valid.is_(False))
            )
        ).all()
        no_phone = (
            (
                await conn.execute(
                    select(Policy.policy_number).join(Lead).where(Lead.phone_id.is_(None))
                )
            )
            .scalars()
            .all()
        )
    assert {r.raw for r in flagged} == {"85551234", "1381234"}
    assert sorted(no_phone) == ["P1", "P2"]
    assert s.lookup == {"1301": 1, "1302": 1}
    async with engine.connect() as conn:
        recorded = (await conn.execute(select(ImportRun.summary))).scalar_one()
    assert recorded["phones_to_look_up_files"] == s.lookup_files
    assert sorted(Path(p).name for p in s.lookup_files) == [
        "l.csv.phones-to-look-up.1301.csv",
        "l.csv.phones-to-look-up.1302.csv",
    ]


async def test_changed_expiry_updates_the_policy_and_moves_the_due_date(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    await run(engine, write_csv(tmp_path / "a.csv", [row("P1", expiry="2026-02-28")]))
    s = await run(engine, write_csv(tmp_path / "b.csv", [row("P1", expiry="2026-03-31")]))
    assert (s.imported, s.updated) == (0, 1)
    assert await count(engine, Lead) == 1
    async with engine.connect() as conn:
        due = (await conn.execute(select(Lead.due_on))).scalar()
    assert due == date(2026, 3, 6)


async def test_an_imported_lead_is_due_by_the_desk_s_configured_timeline_rules(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """The import and the timeline job use the same rules (the import used the defaults)."""
    rules = TimelineRules(distribution_days=20, trial_months=2)
    expiry = date(2026, 3, 31)
    await run(engine, write_csv(tmp_path / "r.csv", [row("P1", expiry="2026-03-31")]), rules=rules)
    await run(
        engine,
        write_csv(tmp_path / "t.csv", [row("P2", expiry="2026-03-31")]),
        "trial",
        rules=rules,
    )
    async with engine.connect() as conn:
        got = {k: d for k, d in (await conn.execute(select(Lead.kind, Lead.due_on))).all()}
    assert got == {
        "renewal": due_day("renewal", expiry, rules),  # 11 March, not the default 6th
        "trial": due_day("trial", expiry, rules),  # 31 January, not the default 28 Feb
    }
    assert got["renewal"] == date(2026, 3, 11) and got["trial"] == date(2026, 1, 31)


async def test_renewed_policies_are_skipped_and_counted(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    await run(engine, write_csv(tmp_path / "old.csv", [row("NEW1", previous="OLD1")]))
    header_with_flag = [*HEADER, "已续保"]
    path = write_csv(
        tmp_path / "l.csv",
        [[*row("OLD1"), "否"], [*row("P2", holder="李四"), "是"], [*row("P3", holder="王五"), ""]],
        header=header_with_flag,
    )
    s = await run(engine, path)
    assert s.skipped == {"renewed": 2}
    assert s.imported == 1
    assert await count(engine, Policy, Policy.policy_number.in_(["OLD1", "P2"])) == 0


async def test_handled_leads_are_skipped_and_never_reopened(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "l.csv", [row("P1"), row("P2", holder="李四")])
    await run(engine, path)
    async with engine.begin() as conn:
        p1 = (await conn.execute(select(Policy.id).where(Policy.policy_number == "P1"))).scalar()
        await conn.execute(
            update(Lead).where(Lead.policy_id == p1).values(contact_result="declined")
        )
    changed = write_csv(
        tmp_path / "l2.csv",
        [row("P1", expiry="2026-03-31"), row("P2", holder="李四", expiry="2026-03-31")],
    )
    s = await run(engine, changed)
    assert s.skipped == {"handled": 1}
    assert s.updated == 1
    async with engine.connect() as conn:
        expiry = (await conn.execute(select(Policy.expiry_date).where(Policy.id == p1))).scalar()
    assert expiry == date(2026, 2, 28)  # a handled lead's policy is left alone


async def test_lapsed_import_skips_a_policy_whose_renewal_lead_was_closed(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "l.csv", [row("P1"), row("P2", holder="李四")])
    await run(engine, path)
    async with engine.begin() as conn:
        await conn.execute(
            update(Lead)
            .where(Lead.policy_id.in_(select(Policy.id).where(Policy.policy_number == "P1")))
            .values(status=LeadStatus.CLOSED.value)
        )
    s = await run(engine, path, kind="lapsed")
    assert (s.imported, dict(s.skipped)) == (1, {"handled": 1})
    async with engine.connect() as conn:
        lapsed = (
            (await conn.execute(select(Lead.due_on).where(Lead.kind == "lapsed"))).scalars().all()
        )
    assert lapsed == [TODAY]


async def test_bad_rows_go_to_the_error_file_and_good_rows_land(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "l.csv", [row("P1"), row("", holder="x"), row("P3", start="2026-05-01")]
    )
    s = await run(engine, path)
    assert (s.imported, s.rejected) == (1, 2)
    assert s.errors_file == str(tmp_path / "l.csv.errors.csv")
    lines = read_report(s.errors_file)
    assert [(r["row"], r["column"], r["reason"]) for r in lines] == [
        ("3", "保单号", "no policy number"),
        ("4", "终保日期", "expiry date before the start date 2026-05-01"),
    ]
    # Fixed and imported again: the stale error file goes away.
    write_csv(path, [row("P1")])
    s = await run(engine, path)
    assert s.errors_file is None and not (tmp_path / "l.csv.errors.csv").exists()


async def test_xlsx_import_lands_the_same_as_csv(engine: AsyncEngine, tmp_path: Path) -> None:
    rows = [row(f"P{i}", holder=f"客户{i}", holder_phone=f"1391234{i:04d}") for i in range(5)]
    s = await run(engine, write_xlsx(tmp_path / "l.xlsx", rows))
    assert (s.format, s.imported) == ("xlsx", 5)
    again = await run(engine, write_csv(tmp_path / "l.csv", rows))
    assert again.skipped == {"unchanged": 5}


async def test_branch_email_column_sets_the_branch_address(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    header = [*HEADER, "机构邮箱"]
    path = write_csv(tmp_path / "l.csv", [[*row("P1"), "sjz@example.com"]], header=header)
    await run(engine, path)
    async with engine.connect() as conn:
        branch = (await conn.execute(select(Branch.code, Branch.name, Branch.email))).one()
    assert tuple(branch) == ("1301", "石家庄分公司", "sjz@example.com")


async def test_a_branch_email_that_is_not_one_address_is_a_row_error_and_good_rows_land(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    header = [*HEADER, "机构邮箱"]
    rows = [
        [*row("P1"), "sjz@example.com"],
        [*row("P2", branch="1302 唐山分公司"), "ts@example.com\r\nBcc: thief@example.net"],
        [*row("P3", branch="1303 保定分公司"), "bd@example.com, boss@example.com"],
    ]
    s = await run(engine, write_csv(tmp_path / "l.csv", rows, header=header))
    assert (s.imported, s.rejected) == (1, 2)
    assert s.errors_file is not None
    lines = read_report(s.errors_file)
    assert [(r["row"], r["column"]) for r in lines] == [("3", "机构邮箱"), ("4", "机构邮箱")]
    assert all(r["reason"].startswith("not one e-mail address") for r in lines)
    async with engine.connect() as conn:
        branches = (await conn.execute(select(Branch.code, Branch.email))).all()
    assert [tuple(b) for b in branches] == [("1301", "sjz@example.com")]


async def test_a_file_that_breaks_midway_leaves_nothing_behind(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "l.csv", [row(f"P{i}", holder_phone=f"1391234{i:04d}") for i in range(250)]
    )
    with path.open("a", encoding="utf-8") as fh:
        fh.write("P999," + "x" * 200_000 + "\n")  # beyond the csv module's field limit
    with pytest.raises(ImportInputError, match="cannot read the file"):
        await run(engine, path, batch_size=100)
    assert await table_counts(engine) == dict.fromkeys(
        ("branches", "customers", "phones", "policies", "leads", "import_runs"), 0
    )


async def test_invalid_numbers_on_open_leads_are_listed_from_the_database(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "l.csv",
        [row("P1", holder_phone="85551234"), row("P2", holder="李四", branch="1302 唐山分公司")],
    )
    await run(engine, path)
    async with engine.connect() as conn:
        listed = await phones_to_look_up(conn)
        other = await phones_to_look_up(conn, "1302")
    assert [(r["branch"], r["policy_number"], r["raw"]) for r in listed] == [
        ("1301", "P1", "85551234")
    ]
    assert other == []
