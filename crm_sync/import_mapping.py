"""Which column of an export holds which field: the built-in header aliases, a mapping file.

load_mapping(path)          the aliases, extended by a TOML mapping file
resolve_columns(header, m)  field -> column index for one header row
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from crm_sync.exceptions import ImportInputError

# field -> header aliases (Chinese as the core system exports them, then English).
ALIASES: dict[str, tuple[str, ...]] = {
    "policy_number": ("保单号", "保单号码", "policy number", "policy no", "policy"),
    "plate_number": ("车牌号", "车牌号码", "车牌", "plate number", "plate", "licence plate"),
    "make_model": ("厂牌型号", "车型", "make model", "make and model", "vehicle model"),
    "use_type": ("使用性质", "use type", "usage"),
    "previous_policy_number": (
        "上年保单号",
        "上年保单号码",
        "previous policy number",
        "previous policy no",
        "last year policy number",
    ),
    "policyholder": ("投保人", "投保人名称", "投保人姓名", "policyholder", "applicant"),
    "policyholder_phone": (
        "投保人联系电话",
        "投保人电话",
        "policyholder phone",
        "applicant phone",
    ),
    "insured": ("被保险人", "被保险人名称", "被保险人姓名", "insured", "insured name"),
    "insured_phone": ("被保险人联系电话", "被保险人电话", "insured phone"),
    "address": ("通信地址", "联系地址", "地址", "address", "mailing address"),
    "start_date": ("起保日期", "保险起期", "start date", "effective date"),
    "expiry_date": (
        "终保日期",
        "到期日期",
        "保险止期",
        "expiry date",
        "expiry",
        "end date",
        "expiration date",
    ),
    "handler": ("经办人", "handler"),
    "business_category": ("业务类别", "业务来源", "business category", "category"),
    "branch": ("机构", "机构名称", "归属机构", "branch"),
    "branch_code": ("机构代码", "branch code"),
    "branch_email": ("机构邮箱", "branch email", "branch e-mail"),
    "fleet": ("车队", "车队名称", "fleet"),
    "premium": ("保费", "签单保费", "premium"),
    "renewed": ("已续保", "是否续保", "续保状态", "renewed"),
}
REQUIRED = ("policy_number", "expiry_date", "policyholder")
PHONE_FIELDS = ("policyholder_phone", "insured_phone")

_HEADER_JUNK = re.compile(r"[\s_\-./()（）:：*'\"\ufeff]+")


def header_key(text: str) -> str:
    return _HEADER_JUNK.sub("", text).lower()


# --------------------------------------------------------------------------- mapping


@dataclass(frozen=True, slots=True)
class Mapping:
    """Header aliases per field, plus extra date formats (strptime) and a fixed header row."""

    columns: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(ALIASES))
    date_formats: tuple[str, ...] = ()
    header_row: int | None = None


def load_mapping(path: Path | None) -> Mapping:
    """The built-in aliases, extended by a mapping file (its names are tried first).

    The file (TOML)::

        header_row = 3                  # optional: where the header is (1 = first line)
        date_formats = ["%d/%m/%Y"]     # optional: tried after the built-in formats
        [columns]
        policy_number = "Pol. No."
        expiry_date = ["Valid until", "Expires"]
    """
    if path is None:
        return Mapping()
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8-sig"))
    except FileNotFoundError as exc:
        raise ImportInputError(f"mapping file {path} does not exist") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ImportInputError(f"mapping file {path} is not valid TOML: {exc}") from exc
    columns = dict(ALIASES)
    given = data.get("columns", {})
    if not isinstance(given, dict):
        raise ImportInputError(f"mapping file {path}: [columns] must be a table")
    for name, headers in given.items():
        if name not in ALIASES:
            raise ImportInputError(
                f"mapping file {path}: unknown field {name!r}; known fields: " + ", ".join(ALIASES)
            )
        if isinstance(headers, str):
            headers = [headers]
        if not isinstance(headers, list) or not all(isinstance(h, str) for h in headers):
            raise ImportInputError(
                f"mapping file {path}: {name} must be a header name or a list of them"
            )
        columns[name] = (*headers, *ALIASES[name])
    formats = data.get("date_formats", [])
    if isinstance(formats, str):
        formats = [formats]
    header_row = data.get("header_row")
    if header_row is not None and (not isinstance(header_row, int) or header_row < 1):
        raise ImportInputError(f"mapping file {path}: header_row must be a positive integer")
    return Mapping(columns=columns, date_formats=tuple(formats), header_row=header_row)


def resolve_columns(header: Sequence[str], mapping: Mapping) -> dict[str, int]:
    keys = [header_key(h) for h in header]
    columns: dict[str, int] = {}
    for name, aliases in mapping.columns.items():
        for alias in aliases:
            wanted = header_key(alias)
            if wanted in keys:
                index = keys.index(wanted)
                if index not in columns.values():
                    columns[name] = index
                    break
    return columns
