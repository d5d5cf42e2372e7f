"""The import's customers and their numbers, one batch at a time.

Customers are merged on their match key (`crm_sync.import_choices.customer_keys`); a stored
customer's first address of the run wins, and numbers are only ever added: a stored number
keeps its accuracy, its role and its do-not-call mark. `crm_sync.import_writer` calls these.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_sync.bulk import bulk_insert, in_values
from crm_sync.import_choices import Prepared, WantedCustomer, wanted_customers
from crm_sync.models import Customer, Phone
from crm_sync.phones import ParsedPhone

customers_t: Table = Customer.__table__  # type: ignore[assignment]
phones_t: Table = Phone.__table__  # type: ignore[assignment]


async def write_customers(
    conn: AsyncConnection, todo: list[Prepared], addressed: set[int]
) -> tuple[dict[str, int], set[int]]:
    """Customers merged on match_key; their numbers added (never altered: accuracy is kept).

    Returns each key's customer id and the stored customers this batch changed."""
    wanted, phones = wanted_customers(todo)
    ids, stored, changed_customers = await _customers(conn, wanted, addressed)
    changed_customers |= await _new_phones(conn, phones, ids, stored)
    return ids, changed_customers


async def _customers(
    conn: AsyncConnection, wanted: dict[str, WantedCustomer], addressed: set[int]
) -> tuple[dict[str, int], set[str], set[int]]:
    """Each wanted key's customer id (new ones inserted), the keys that were stored
    already, and the stored customers whose address changed."""
    keys = list(wanted)
    stored = {
        row.match_key: row
        for row in await conn.execute(
            select(customers_t.c.id, customers_t.c.match_key, customers_t.c.address).where(
                in_values(conn, customers_t.c.match_key, keys)
            )
        )
    }
    ids = {key: row.id for key, row in stored.items()}
    new_keys = [k for k in keys if k not in stored]
    if new_keys:
        await bulk_insert(
            conn,
            customers_t,
            [
                {"match_key": k, "name": wanted[k].name, "address": wanted[k].address}
                for k in new_keys
            ],
            ["match_key"],
        )
        for row in await conn.execute(
            select(customers_t.c.id, customers_t.c.match_key).where(
                in_values(conn, customers_t.c.match_key, new_keys)
            )
        ):
            ids[row.match_key] = row.id
    # The first address a file gives a customer wins: a fleet's rows carry many, and
    # letting each overwrite the last would make every re-run an "update".
    address_changes = [
        {"_id": row.id, "address": wanted[key].address}
        for key, row in stored.items()
        if wanted[key].address and wanted[key].address != row.address and row.id not in addressed
    ]
    addressed.update(ids.values())
    if address_changes:
        await conn.execute(
            update(customers_t)
            .where(customers_t.c.id == bindparam("_id"))
            .values(address=bindparam("address")),
            address_changes,
        )
    return ids, set(stored), {c["_id"] for c in address_changes}


async def _new_phones(
    conn: AsyncConnection,
    phones: dict[str, dict[str, tuple[ParsedPhone, str]]],
    ids: dict[str, int],
    stored: set[str],
) -> set[int]:
    """Insert the numbers a customer does not have yet; the stored customers that got one."""
    have: set[tuple[int, str]] = set()
    stored_ids = [ids[k] for k in phones if k in stored]
    if stored_ids:
        for row in await conn.execute(
            select(phones_t.c.customer_id, phones_t.c.raw).where(
                in_values(conn, phones_t.c.customer_id, stored_ids)
            )
        ):
            have.add((row.customer_id, row.raw))
    new_phones = []
    changed_customers: set[int] = set()
    for key, numbers in phones.items():
        cid = ids[key]
        for raw, (ph, role) in numbers.items():
            if (cid, raw) in have:
                continue
            new_phones.append(
                {
                    "customer_id": cid,
                    "raw": raw,
                    "role": role,
                    "kind": ph.kind.value,
                    "e164": ph.e164,
                    "extension": ph.extension,
                    "valid": ph.valid,
                    "invalid_reason": ph.invalid_reason,
                }
            )
            if key in stored:
                changed_customers.add(cid)
    if new_phones:
        await bulk_insert(conn, phones_t, new_phones, ["customer_id", "raw"])
    return changed_customers


async def phones_of(conn: AsyncConnection, customer_ids: set[int]) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {}
    if not customer_ids:
        return out
    for row in await conn.execute(
        select(
            phones_t.c.id,
            phones_t.c.customer_id,
            phones_t.c.raw,
            phones_t.c.role,
            phones_t.c.valid,
            phones_t.c.accuracy,
            phones_t.c.do_not_call,
        )
        .where(in_values(conn, phones_t.c.customer_id, list(customer_ids)))
        .order_by(phones_t.c.id)
    ):
        out.setdefault(row.customer_id, []).append(row)
    return out
