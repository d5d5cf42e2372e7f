"""Realistic core-system exports for demos, tests and benchmarks (deterministic per seed).

The rows look like what the desk receives: Chinese names, plates like 冀B·12345, mobiles and
landlines (some with extensions, some impossible), expiry dates over the coming 60 days,
fleets whose policyholder number is the fleet's switchboard, several branches with their
e-mail addresses, and a few policies already renewed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from crm_sync.spreadsheets import SafeCsvWriter, append_rows

HEADER = (
    "保单号",
    "车牌号",
    "厂牌型号",
    "使用性质",
    "上年保单号",
    "投保人",
    "投保人联系电话",
    "被保险人",
    "被保险人联系电话",
    "通信地址",
    "起保日期",
    "终保日期",
    "经办人",
    "业务类别",
    "机构",
    "机构邮箱",
    "车队",
    "保费",
    "已续保",
)


@dataclass(frozen=True, slots=True)
class DemoBranch:
    code: str
    name: str
    city: str
    plate_letter: str
    area_code: str
    email: str
    districts: tuple[str, ...]


BRANCHES = (
    DemoBranch("1301", "石家庄分公司", "石家庄市", "A", "0311", "sjz-renewal@example.com",
               ("长安区", "桥西区", "新华区", "裕华区")),
    DemoBranch("1302", "唐山分公司", "唐山市", "B", "0315", "ts-renewal@example.com",
               ("路南区", "路北区", "开平区")),
    DemoBranch("1306", "保定分公司", "保定市", "F", "0312", "bd-renewal@example.com",
               ("竞秀区", "莲池区", "满城区")),
    DemoBranch("1309", "沧州分公司", "沧州市", "J", "0317", "cz-renewal@example.com",
               ("新华区", "运河区")),
    DemoBranch("1310", "廊坊分公司", "廊坊市", "R", "0316", "lf-renewal@example.com",
               ("广阳区", "安次区")),
)  # fmt: skip

SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志红玉兰文辉鹏飞宇浩然晨曦欣怡子涵梓轩"
MAKES = (
    "大众FV7146BBDBG轿车",
    "丰田TV7181GL-i轿车",
    "本田HG7204AB轿车",
    "别克SGM7158DAA1轿车",
    "日产DFL7168VANL2轿车",
    "比亚迪BYD7152WT6HEVC2轿车",
    "长城CC6460RM0A多用途乘用车",
    "哈弗CC6470UM09多用途乘用车",
    "吉利MR7152D03轿车",
    "解放CA1040P40K2L1E5A84载货汽车",
)
PRIVATE_USE = ("家庭自用汽车", "非营业个人客车")
FLEET_USE = ("营业货车", "非营业企业客车")
CATEGORIES = ("直销业务", "代理业务", "离职人员业务")  # desk's own, agency, salesperson left
STREETS = ("建设路", "中华大街", "和平路", "胜利街", "友谊大街", "裕华路", "新华路", "光明街")
FLEET_NAMES = ("顺达物流有限公司", "宏运汽车运输有限公司", "恒通货运有限公司", "安达租赁有限公司")
HANDLERS = ("刘经理", "陈丽", "王强", "赵敏", "孙涛")
FLEET_SHARE = 0.08
INVALID_SHARE = 0.05
RENEWED_SHARE = 0.04


def _name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


# Allocated mobile prefixes (phonenumbers rejects unallocated ranges such as 194).
MOBILE_PREFIXES = (
    "130",
    "133",
    "135",
    "138",
    "139",
    "150",
    "152",
    "158",
    "177",
    "186",
    "189",
    "199",
)


def _mobile(rng: random.Random) -> str:
    return rng.choice(MOBILE_PREFIXES) + f"{rng.randint(0, 99999999):08d}"


def _landline(rng: random.Random, branch: DemoBranch, extension: bool = False) -> str:
    # Only Shijiazhuang (0311) has eight-digit local numbers in Hebei; the rest have seven.
    rest = 7 if branch.area_code == "0311" else 6
    number = f"{branch.area_code}-{rng.randint(2, 8)}{rng.randint(0, 10**rest - 1):0{rest}d}"
    return number + (f"转{rng.randint(100, 899)}" if extension else "")


def _invalid(rng: random.Random, branch: DemoBranch) -> str:
    kind = rng.randrange(4)
    if kind == 0:
        return _mobile(rng)[:-2]  # two digits lost
    if kind == 1:
        return f"{rng.randint(2, 8)}{rng.randint(0, 9999999):07d}"  # no area code
    if kind == 2:
        return "11111111111"
    return f"{branch.area_code}-{rng.randint(100, 9999)}"


def _phone(rng: random.Random, branch: DemoBranch) -> str:
    roll = rng.random()
    if roll < INVALID_SHARE:
        return _invalid(rng, branch)
    if roll < 0.17:
        return _landline(rng, branch, extension=rng.random() < 0.2)
    return _mobile(rng)


def demo_rows(count: int, *, seed: int = 1, today: date) -> Iterator[list[str]]:
    """`count` export rows (without the header)."""
    rng = random.Random(seed)
    fleets: dict[str, tuple[str, DemoBranch]] = {}
    regulars: list[tuple[str, str, str]] = []  # name, phone, address: customers with 2 cars
    for i in range(count):
        branch = rng.choice(BRANCHES)
        expiry = today + timedelta(days=rng.randint(1, 60))
        start = expiry - timedelta(days=364)
        address = (
            f"河北省{branch.city}{rng.choice(branch.districts)}{rng.choice(STREETS)}"
            f"{rng.randint(1, 300)}号"
        )
        plate = f"冀{branch.plate_letter}·{rng.randint(10000, 99999)}"
        if rng.random() < 0.2:
            plate = f"冀{branch.plate_letter}·{rng.choice('ABCDEFGHJK')}{rng.randint(1000, 9999)}"
        fleet = ""
        if rng.random() < FLEET_SHARE:
            fleet_name = rng.choice(FLEET_NAMES)
            if fleet_name not in fleets:
                fleets[fleet_name] = (_landline(rng, branch), branch)
            fleet_phone, branch = fleets[fleet_name]
            fleet = fleet_name
            holder, holder_phone = f"{branch.city[:-1]}{fleet_name}", fleet_phone
            insured = _name(rng)
            insured_phone = _mobile(rng) if rng.random() < 0.7 else ""
            use = rng.choice(FLEET_USE)
        else:
            if regulars and rng.random() < 0.03:
                holder, holder_phone, address = rng.choice(regulars)
            else:
                holder, holder_phone = _name(rng), _phone(rng, branch)
                if rng.random() < 0.05:
                    regulars.append((holder, holder_phone, address))
            if rng.random() < 0.85:
                insured, insured_phone = holder, holder_phone
            else:
                insured, insured_phone = _name(rng), _phone(rng, branch)
            use = rng.choice(PRIVATE_USE)
        previous = f"PDAA{expiry.year - 1}{branch.code}{rng.randint(0, 10**9):010d}"
        yield [
            f"PDAA{expiry.year}{branch.code}{i:010d}",
            plate,
            rng.choice(MAKES),
            use,
            previous if rng.random() < 0.6 else "",
            holder,
            holder_phone,
            insured,
            insured_phone,
            address,
            start.isoformat(),
            expiry.isoformat(),
            rng.choice(HANDLERS),
            rng.choice(CATEGORIES),
            f"{branch.code} {branch.name}",
            branch.email,
            fleet,
            f"{rng.randint(1500, 9000)}.{rng.choice(('00', '50'))}",
            "是" if rng.random() < RENEWED_SHARE else "否",
        ]


def write_demo_file(
    path: Path,
    count: int,
    *,
    seed: int = 1,
    today: date,
    file_format: str | None = None,
    encoding: str = "utf-8-sig",
) -> Path:
    """Write `count` rows to `path` as CSV or XLSX (by `file_format` or the file's suffix)."""
    path = Path(path)
    fmt = file_format or ("xlsx" if path.suffix.lower() == ".xlsx" else "csv")
    rows = demo_rows(count, seed=seed, today=today)
    if fmt == "xlsx":
        from openpyxl import Workbook

        wb = Workbook(write_only=True)
        ws = wb.create_sheet("续保清单")
        append_rows(ws, [HEADER, *rows])
        wb.save(path)
        return path
    with path.open("w", encoding=encoding, newline="") as fh:
        out = SafeCsvWriter(fh)
        out.writerow(HEADER)
        out.writerows(rows)
    return path
