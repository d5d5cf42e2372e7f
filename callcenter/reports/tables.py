"""The reports' tables as a person reads them: columns with Chinese (the desk's words, the
spreadsheet headers) and English labels, and the XLSX file of any set of tables. Pure."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from openpyxl import Workbook
from openpyxl.utils import get_column_letter

from crm_sync.spreadsheets import append_rows

# Stored codes as a person reads them: (中文, English).
KINDS = {
    "renewal": ("续保", "renewal"),
    "lapsed": ("脱保", "lapsed"),
    "trial": ("体验会员", "trial member"),
    "callback": ("承保回访", "post-underwriting callback"),
    "reminder": ("续保提醒", "reminder"),
}
OUTCOMES = {
    "answered": ("接通", "answered"),
    "answered_hung_up_early": ("接通后速挂", "hung up at once"),
    "busy": ("占线", "busy"),
    "no_answer": ("无人接听", "no answer"),
    "congestion": ("线路拥塞", "congestion"),
    "unreachable": ("无法接通", "unreachable"),
    "switched_off": ("关机/停机", "switched off"),
    "wrong_number": ("空号/错号", "wrong number"),
    "failed": ("呼叫失败", "failed"),
    "hung_up_by_action": ("系统挂断", "hung up by the dialer"),
    "unknown": ("未知", "unknown"),
    "abandoned": ("放弃(无空闲坐席)", "abandoned"),
}
WEEKDAYS = {
    i: (zh, en)
    for i, (zh, en) in enumerate(
        zip(
            ("周一", "周二", "周三", "周四", "周五", "周六", "周日"),
            ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
            strict=True,
        )
    )
}


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    zh: str
    en: str
    percent: bool = False
    labels: Mapping[Any, tuple[str, str]] | None = None

    def show(self, value: Any, lang: str) -> Any:
        """The value as a person reads it in `lang` (zh_CN or en)."""
        if self.labels is not None and value in self.labels:
            return self.labels[value][0 if lang == "zh_CN" else 1]
        return value


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    zh: str
    en: str
    columns: tuple[Column, ...]


C = Column
PERFORMANCE = Table(
    "performance",
    "业绩",
    "Performance",
    (
        C("label", "分组", "Group"),
        C("handed_out", "发放线索", "Leads handed out"),
        C("called", "已拨打", "Called"),
        C("reached", "已接通", "Reached"),
        C("attempts", "拨打次数", "Calls"),
        C("talk_seconds", "通话时长(秒)", "Talk time (s)"),
        C("renewals", "成功续保", "Renewals"),
        C("premium", "保费(元)", "Premium (CNY)"),
        C("points", "积分", "Points"),
        C("renewal_rate", "续保率", "Renewal rate", percent=True),
        C("attempts_per_renewal", "平均拨打次数/续保", "Calls per renewal"),
    ),
)
RESULTS = Table(
    "contact_results",
    "联系结果",
    "Contact results",
    (
        C("kind", "线索类型", "Kind of lead", labels=KINDS),
        C("label", "联系结果", "Contact result"),
        C("count", "数量", "Count"),
    ),
)
DIALER = (
    Table(
        "attempts_by_hour",
        "各时段呼叫结果",
        "Calls by outcome and hour",
        (
            C("hour", "时段", "Hour"),
            C("outcome", "呼叫结果", "Outcome", labels=OUTCOMES),
            C("attempts", "拨打次数", "Calls"),
        ),
    ),
    Table(
        "answer_rate_by_hour",
        "各时段接通率",
        "Answer rate by hour",
        (
            C("hour", "时段", "Hour"),
            C("attempts", "拨打次数", "Calls"),
            C("reached", "接通", "Reached"),
            C("answer_rate", "接通率", "Answer rate", percent=True),
        ),
    ),
    Table(
        "answer_rate_by_weekday",
        "按星期接通率",
        "Answer rate by weekday",
        (
            C("weekday", "星期", "Weekday", labels=WEEKDAYS),
            C("attempts", "拨打次数", "Calls"),
            C("reached", "接通", "Reached"),
            C("answer_rate", "接通率", "Answer rate", percent=True),
        ),
    ),
    Table(
        "campaigns",
        "外呼活动放弃率",
        "Abandon rate per campaign",
        (
            C("campaign", "外呼活动", "Campaign"),
            C("kind", "类型", "Kind", labels=KINDS),
            C("attempts", "拨打次数", "Calls"),
            C("answered", "接听", "Answered"),
            C("abandoned", "放弃", "Abandoned"),
            C("abandon_rate", "放弃率", "Abandon rate", percent=True),
        ),
    ),
    Table(
        "distribution",
        "发放与首拨",
        "Distribution to first call",
        (
            C("day", "发放日期", "Handed out on"),
            C("handed_out", "发放线索", "Leads handed out"),
            C("first_called", "已首拨", "First called"),
            C("avg_first_call_minutes", "发放至首拨(分钟)", "To first call (min)"),
            C("late", "截止未填结果", "No result at the deadline"),
        ),
    ),
    Table(
        "inaccurate_by_branch",
        "不准确号码",
        "Inaccurate numbers by branch",
        (
            C("branch", "机构", "Branch"),
            C("inaccurate", "不准确号码", "Inaccurate"),
            C("corrected", "已更正", "Corrected"),
            C("corrected_rate", "更正率", "Corrected rate", percent=True),
        ),
    ),
)


def xlsx(sheets: Sequence[tuple[Table, Sequence[dict[str, Any]]]]) -> bytes:
    """One sheet per table, Chinese headers, numbers as numbers (premium too)."""
    book = Workbook()
    first = True
    for table, rows in sheets:
        sheet = book.active if first else book.create_sheet()
        first = False
        assert sheet is not None
        sheet.title = table.zh[:31]
        sheet.append([c.zh for c in table.columns])
        append_rows(sheet, ([_cell(row.get(c.key), c) for c in table.columns] for row in rows))
        for i, col in enumerate(table.columns, start=1):
            sheet.column_dimensions[get_column_letter(i)].width = max(10, len(col.zh) * 2 + 2)
            if col.percent:
                for cell in sheet[get_column_letter(i)][1:]:
                    cell.number_format = "0.0%"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _cell(value: Any, column: Column) -> Any:
    if column.key == "premium" and isinstance(value, str):
        return Decimal(value)
    return column.show(value, "zh_CN")


__all__ = ["DIALER", "PERFORMANCE", "RESULTS", "Column", "Table", "xlsx"]
