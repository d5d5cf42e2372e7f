"""owner queue: the daily deal becomes a HOT update of `leads` (PostgreSQL)

Revision ID: 0010_owner_queue
Revises: 0009_distribution_write

PostgreSQL only (SQLite keeps `ix_leads_owner_status` and finds a specialist's leads by it).

An UPDATE can only be HOT (heap-only: the new row version on the same page, no index entry
written) when it changes no column that an index of the table uses, in its key or its
predicate, and the page has room. The deal changes `owner_id`, `status`, `distributed_on` and
`updated_at` of a million leads, so:

- `ix_leads_owner_status` is dropped. A specialist's open work (owner set, status assigned or
  scheduled) is found through `owner_queue` instead: rows (specialist_id, lead_ids int[]),
  written by the statement trigger that already checks the owner (one row per owner per
  statement, so the deal writes ~25,000 small rows, not a million index entries). It has no
  foreign key (a look-up per row); deleting a specialist deletes their rows. The queue is
  a superset: every lead whose owner is s and whose status is assigned or scheduled is in one
  of s's rows; a row may also name leads that have since moved on. Readers re-check the lead
  (owner_id = s and its status), so stale ids are harmless; `compact_owner_queue` (run by the
  distribution) rewrites the queue without them.
- `ix_leads_status_due` (key and predicate on `status`) is replaced by `ix_leads_due_on`
  (`due_on`) and `ix_leads_callback_next` (`next_attempt_at` of callback leads): the deal
  changes neither column.
- `leads` gets fillfactor 45: a dealt row is ~15 bytes longer than a due one, and a page
  filled to 45 % keeps room for a second version of each of its rows (new pages only; pages
  written before keep what they have until rewritten).
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from alembic import op

revision: str = "0010_owner_queue"
down_revision: str | Sequence[str] | None = "0009_distribution_write"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "('assigned', 'scheduled')"  # the specialist statuses (dialer.queues.SPECIALIST_STATUSES)

# The part of 0009's owner check that picks the owners, replaced below: the queue rows are
# written from the same pass over the transition tables. The rest of the function (locking
# the owners, the foreign key's error) is 0009's text.
OWNERS_0009 = (
    "    -- Like the foreign key, only owners a row gets from this statement",
    "    IF owners IS NULL THEN",
)
OWNERS_AND_QUEUE = f"""\
    -- Rows that become a specialist's open work enter the owner queue (migration 0010): those
    -- given an owner, or a specialist status they did not have; one queue row per owner and
    -- statement. An update keeping both (the dialer's results) adds nothing. Like the foreign
    -- key, only owners a row gets from this statement are looked up and locked: an update
    -- that keeps the owner neither looks up nor locks the specialist.
    IF TG_OP = 'INSERT' THEN
        WITH queued AS (
            INSERT INTO owner_queue (specialist_id, lead_ids)
            SELECT owner_id, array_agg(id) FROM new_leads
             WHERE owner_id IS NOT NULL AND status IN {S}
             GROUP BY owner_id
        )
        SELECT array_agg(o) INTO owners
          FROM (SELECT DISTINCT owner_id AS o FROM new_leads WHERE owner_id IS NOT NULL) AS d;
    ELSE
        -- One pass over the statement's rows, grouped by owner (a few hundred groups for a
        -- chunk of the deal), serves both the queue and the owner check.
        WITH changed AS (
            SELECT n.owner_id,
                   array_agg(n.id) FILTER (WHERE n.status IN {S}) AS ids,
                   bool_or(n.owner_id IS DISTINCT FROM p.owner_id) AS new_owner
              FROM new_leads AS n LEFT JOIN old_leads AS p ON p.id = n.id
             WHERE n.owner_id IS NOT NULL
               AND (n.owner_id IS DISTINCT FROM p.owner_id
                    OR (n.status IN {S} AND p.status NOT IN {S}))
             GROUP BY n.owner_id
        ), queued AS (
            INSERT INTO owner_queue (specialist_id, lead_ids)
            SELECT owner_id, ids FROM changed WHERE ids IS NOT NULL
        )
        SELECT array_agg(owner_id) FILTER (WHERE new_owner) INTO owners FROM changed;
    END IF;
"""


def _revision_0009() -> ModuleType:
    path = Path(__file__).with_name("0009_distribution_write.py")
    spec = importlib.util.spec_from_file_location("_revision_0009", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def owner_check_0009() -> str:
    stmt: str = _revision_0009().OWNER_CHECK[0]
    return stmt.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def owner_check_with_queue() -> str:
    old = owner_check_0009()
    start, end = old.index(OWNERS_0009[0]), old.index(OWNERS_0009[1])
    return old[:start] + OWNERS_AND_QUEUE + old[end:]


# One statement each (asyncpg prepares what it runs, one command at a time).
def upgrade_statements() -> list[str]:
    return [
        """
CREATE TABLE owner_queue (
    id bigserial PRIMARY KEY,
    specialist_id integer NOT NULL,
    lead_ids integer[] NOT NULL
)
""",
        "CREATE INDEX ix_owner_queue_specialist ON owner_queue (specialist_id)",
        f"""
INSERT INTO owner_queue (specialist_id, lead_ids)
SELECT owner_id, array_agg(id ORDER BY id) FROM leads
 WHERE owner_id IS NOT NULL AND status IN {S}
 GROUP BY owner_id
""",
        owner_check_with_queue(),
        # No foreign key on owner_queue (one look-up per queue row would cost the deal about
        # a second): a deleted specialist's rows go with them.
        """
CREATE FUNCTION owner_queue_release() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM owner_queue WHERE specialist_id = OLD.id;
    RETURN NULL;
END $$
""",
        """
CREATE TRIGGER owner_queue_release AFTER DELETE ON specialists
    FOR EACH ROW EXECUTE FUNCTION owner_queue_release()
""",
        "DROP INDEX ix_leads_owner_status",
        "DROP INDEX ix_leads_status_due",
        "CREATE INDEX ix_leads_due_on ON leads (due_on)",
        "CREATE INDEX ix_leads_callback_next ON leads (next_attempt_at) WHERE kind = 'callback'",
        "ALTER TABLE leads SET (fillfactor = 45)",
    ]


def downgrade_statements() -> list[str]:
    return [
        "ALTER TABLE leads RESET (fillfactor)",
        "DROP INDEX ix_leads_callback_next",
        "DROP INDEX ix_leads_due_on",
        "CREATE INDEX ix_leads_status_due ON leads (status, due_on) "
        "WHERE status IN ('new', 'due', 'scheduled')",
        "CREATE INDEX ix_leads_owner_status ON leads (owner_id, status)",
        "DROP TRIGGER owner_queue_release ON specialists",
        "DROP FUNCTION owner_queue_release()",
        owner_check_0009(),
        "DROP TABLE owner_queue",
    ]


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if not _postgres():
        return
    for stmt in upgrade_statements():
        op.execute(stmt)


def downgrade() -> None:
    if not _postgres():
        return
    for stmt in downgrade_statements():
        op.execute(stmt)
