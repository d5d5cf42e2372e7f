"""Branch e-mails composed (pure: rows in, an `EmailMessage` out, a CSV attached).

    InaccurateNumber, LapsedPolicy      a row of each list
    compose_inaccurate_numbers(...)     the inaccurate numbers of one branch and day
    compose_lapsed(...)                 its lapsed policies (the central desk's marked)
    email_address(raw)                  one address as a header may carry it

`crm_sync.mail` sends them, once per branch, kind and day.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from email_validator import EmailNotValidError, validate_email

from crm_sync.spreadsheets import SafeCsvWriter


@dataclass(frozen=True, slots=True)
class InaccurateNumber:
    policy_number: str
    customer: str
    number: str
    reason: str  # what happened to this number, for the branch (e.g. 空号/号码错误)
    attempts: int  # calls actually placed to it


@dataclass(frozen=True, slots=True)
class LapsedPolicy:
    policy_number: str
    customer: str
    number: str
    expiry_date: date
    central: bool  # lapsed more than 48 h: handled by the central desk, not the branch
    owner: str  # the specialist who has it, or "" while undealt


def email_address(raw: str) -> str:
    """One e-mail address as a header may carry it, normalised (email-validator's syntax
    rules, no DNS look-up); ValueError with the reason otherwise (CR/LF, a list, a name)."""
    try:
        return validate_email(raw, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"not one e-mail address: {exc}") from None


def _message(subject: str, sender: str, to: str, now: datetime) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = to
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain="renewal-desk.local")
    return msg


def _attach_csv(
    msg: EmailMessage, filename: str, header: Sequence[str], rows: Sequence[Sequence[object]]
) -> None:
    buf = io.StringIO()
    writer = SafeCsvWriter(buf)
    writer.writerow(header)
    writer.writerows(rows)
    # The BOM lets a Chinese Excel open the CSV as UTF-8 instead of GB18030.
    msg.add_attachment("\ufeff" + buf.getvalue(), subtype="csv", charset="utf-8", filename=filename)


def compose_inaccurate_numbers(
    branch_name: str,
    branch_email: str,
    sender: str,
    day: date,
    rows: Sequence[InaccurateNumber],
    now: datetime,
) -> EmailMessage:
    msg = _message(
        f"【不准确号码】{branch_name} {day.isoformat()} 共 {len(rows)} 个 / inaccurate numbers",
        sender,
        branch_email,
        now,
    )
    # No sentence about all rows ("after three calls"): a number not in service is marked
    # after one call. Each line says what happened to that number and how many calls it had.
    lines = [
        f"{branch_name}：",
        "",
        f"以下 {len(rows)} 个号码已标记为不准确，每个号码的原因和实际呼叫次数见下文及附件，"
        "请核实后回传正确号码。",
        f"The following {len(rows)} numbers were marked inaccurate; each line says why and how",
        "many calls were made to it. Please check them and send back corrected numbers.",
        "",
    ]
    lines += [
        f"{r.policy_number}  {r.customer}  {r.number}  {r.reason}  "
        f"呼叫 {r.attempts} 次 / {r.attempts} call{'' if r.attempts == 1 else 's'}"
        for r in rows
    ]
    msg.set_content("\n".join(lines))
    _attach_csv(
        msg,
        f"inaccurate-{day.isoformat()}.csv",
        ["保单号 policy", "客户 customer", "号码 number", "原因 reason", "呼叫次数 calls"],
        [[r.policy_number, r.customer, r.number, r.reason, r.attempts] for r in rows],
    )
    return msg


def compose_lapsed(
    branch_name: str,
    branch_email: str,
    sender: str,
    day: date,
    rows: Sequence[LapsedPolicy],
    now: datetime,
) -> EmailMessage:
    central = sum(1 for r in rows if r.central)
    msg = _message(
        f"【脱保清单】{branch_name} {day.isoformat()} 共 {len(rows)} 个，其中中心处理 {central} 个"
        " / lapsed policies",
        sender,
        branch_email,
        now,
    )
    lines = [
        f"{branch_name}：",
        "",
        f"以下 {len(rows)} 张保单已过期未续保（脱保）；脱保超过 48 小时的 {central} 张由中心统一处理。",
        f"The following {len(rows)} policies expired without renewal; the {central} lapsed for",
        "more than 48 hours are handled by the central desk.",
        "",
    ]
    lines += [
        f"{r.policy_number}  {r.customer}  {r.number}  {r.expiry_date.isoformat()}"
        + ("  中心处理 central" if r.central else "")
        for r in rows
    ]
    msg.set_content("\n".join(lines))
    _attach_csv(
        msg,
        f"lapsed-{day.isoformat()}.csv",
        [
            "保单号 policy",
            "客户 customer",
            "号码 number",
            "终保日期 expiry",
            "中心处理 central",
            "所属人员 owner",
        ],
        [
            [
                r.policy_number,
                r.customer,
                r.number,
                r.expiry_date.isoformat(),
                "是" if r.central else "",
                r.owner,
            ]
            for r in rows
        ],
    )
    return msg
