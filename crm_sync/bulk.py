"""Bulk writes for the import: many rows in one round trip, on PostgreSQL and on SQLite.

SQLAlchemy's executemany costs more per row than the database's own work, so the import's
new rows go straight through the driver (`bulk_insert`), and its look-ups pass a batch of keys
as one array parameter on PostgreSQL (`in_values`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Table, any_, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql.dml import Insert as PgInsert
from sqlalchemy.dialects.sqlite.dml import Insert as SqliteInsert
from sqlalchemy.ext.asyncio import AsyncConnection


def dialect_insert(conn: AsyncConnection, table: Table) -> PgInsert | SqliteInsert:
    """An `INSERT` of the connection's dialect, for `ON CONFLICT` and `RETURNING`."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def in_values(
    conn: AsyncConnection, column: ColumnElement[Any], values: Sequence[Any]
) -> ColumnElement[bool]:
    """`column IN values`; on PostgreSQL one array parameter (`= ANY($1)`) instead of a
    thousand placeholders, which SQLAlchemy would otherwise render for every batch."""
    values = list(values)
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=postgresql.ARRAY(column.type)))
    return column.in_(values)


def _column_default(column: Any) -> Any:
    default = column.default
    if default is None:
        return None
    if default.is_callable:
        return default.arg(None)  # SQLAlchemy wraps zero-argument callables to take a context
    return default.arg


async def bulk_insert(
    conn: AsyncConnection, table: Table, rows: Sequence[dict[str, Any]], conflict: Sequence[str]
) -> None:
    """`INSERT … ON CONFLICT (conflict) DO NOTHING` of many rows, straight through the driver.

    SQLAlchemy's executemany costs ~100 µs per row in parameter processing, more than the
    database's own work; here PostgreSQL gets a binary COPY, SQLite one `executemany` of
    `INSERT … ON CONFLICT DO NOTHING`. Python-side column defaults are filled in here,
    since the ORM/Core machinery that would apply them is bypassed.
    """
    if not rows:
        return
    given = list(dict.fromkeys(k for row in rows for k in row))
    defaults = {
        c.name: _column_default(c)
        for c in table.columns
        if c.name not in given and c.default is not None
    }
    names = given + list(defaults)
    quoted = ", ".join(f'"{n}"' for n in names)
    target = ", ".join(f'"{n}"' for n in conflict)
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    if conn.dialect.name == "postgresql":
        # Binary COPY straight into the table: the rows were checked against what is stored
        # in this transaction, and imports are serialised by an advisory lock, so no key can
        # clash. A clash with some other writer fails the import whole (nothing is kept).
        fixed = tuple(defaults.values())
        await driver.copy_records_to_table(
            table.name,
            records=[tuple(row.get(n) for n in given) + fixed for row in rows],
            columns=names,
        )
        return
    constant = [_sqlite_value(v) for v in defaults.values()]
    params = [[_sqlite_value(row.get(n)) for n in given] + constant for row in rows]
    placeholders = ", ".join("?" for _ in names)
    sql = (
        f'INSERT INTO "{table.name}" ({quoted}) VALUES ({placeholders}) '
        f"ON CONFLICT ({target}) DO NOTHING"
    )
    await driver.executemany(sql, params)


def _sqlite_value(value: Any) -> Any:
    # The storage formats SQLAlchemy's SQLite types use, so reads through it round-trip.
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value
