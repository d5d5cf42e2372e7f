"""distribution write: lead owners checked per statement, status index without dealt leads

Revision ID: 0009_distribution_write
Revises: 0003_schedules

PostgreSQL only (SQLite keeps the plain foreign key and index, which cost it little):

- `fk_leads_owner_id_specialists` is replaced by the same rule checked once per statement.
  The foreign key ran one look-up query per changed row (a million for the daily deal, a
  quarter of its time); the statement triggers check the statement's distinct owners in one
  query, lock them FOR KEY SHARE as the foreign key did (a concurrent delete of the specialist
  waits, or fails the statement), and raise the same SQLSTATE 23503. Deleting a specialist still
  sets the owner of their leads to NULL (ON DELETE SET NULL, which the owner/date check then
  refuses for dealt leads, as before); changing a referenced specialist id is refused.
- `ix_leads_status_due` only holds leads that are new, due or scheduled: the queries that use
  it look for those, and a lead dealt (assigned) or closed no longer costs an entry in it.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009_distribution_write"
down_revision: str | Sequence[str] | None = "0003_schedules"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUS_DUE_WHERE = "status IN ('new', 'due', 'scheduled')"

# One statement each: the asyncpg driver prepares what it runs, one command at a time.
OWNER_CHECK = [
    """
CREATE FUNCTION leads_owner_is_specialist() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    owners integer[];
    locked integer;
    missing integer;
BEGIN
    -- Like the foreign key, only owners a row gets from this statement: an update that keeps
    -- the owner (most of the dialer's writes) neither looks up nor locks the specialist.
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(o) INTO owners
          FROM (SELECT DISTINCT owner_id AS o FROM new_leads WHERE owner_id IS NOT NULL) AS d;
    ELSE
        SELECT array_agg(o) INTO owners
          FROM (SELECT DISTINCT n.owner_id AS o
                  FROM new_leads AS n LEFT JOIN old_leads AS p ON p.id = n.id
                 WHERE n.owner_id IS NOT NULL AND n.owner_id IS DISTINCT FROM p.owner_id) AS d;
    END IF;
    IF owners IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT count(*) INTO locked
      FROM (SELECT 1 FROM specialists WHERE id = ANY (owners) FOR KEY SHARE) AS s;
    IF locked < cardinality(owners) THEN
        SELECT o INTO missing FROM unnest(owners) AS o
         WHERE NOT EXISTS (SELECT 1 FROM specialists WHERE id = o) LIMIT 1;
        RAISE EXCEPTION 'insert or update on table "leads" violates foreign key constraint "%"',
                        'fk_leads_owner_id_specialists'
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = format('Key (owner_id)=(%s) is not present in table "specialists".',
                                  missing),
                  TABLE = 'leads', CONSTRAINT = 'fk_leads_owner_id_specialists';
    END IF;
    RETURN NULL;
END $$
""",
    """
CREATE TRIGGER leads_owner_insert AFTER INSERT ON leads
    REFERENCING NEW TABLE AS new_leads
    FOR EACH STATEMENT EXECUTE FUNCTION leads_owner_is_specialist()
""",
    """
CREATE TRIGGER leads_owner_update AFTER UPDATE ON leads
    REFERENCING OLD TABLE AS old_leads NEW TABLE AS new_leads
    FOR EACH STATEMENT EXECUTE FUNCTION leads_owner_is_specialist()
""",
    """
CREATE FUNCTION specialists_release_leads() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE leads SET owner_id = NULL WHERE owner_id = OLD.id;
    ELSIF NEW.id <> OLD.id AND EXISTS (SELECT 1 FROM leads WHERE owner_id = OLD.id) THEN
        RAISE EXCEPTION 'update on table "specialists" violates foreign key constraint "%" on %',
                        'fk_leads_owner_id_specialists', 'table "leads"'
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = format('Key (id)=(%s) is still referenced from table "leads".', OLD.id),
                  TABLE = 'specialists', CONSTRAINT = 'fk_leads_owner_id_specialists';
    END IF;
    RETURN NULL;
END $$
""",
    """
CREATE TRIGGER specialists_release_leads AFTER DELETE OR UPDATE OF id ON specialists
    FOR EACH ROW EXECUTE FUNCTION specialists_release_leads()
""",
]

DROP_OWNER_CHECK = [
    "DROP TRIGGER specialists_release_leads ON specialists",
    "DROP FUNCTION specialists_release_leads()",
    "DROP TRIGGER leads_owner_update ON leads",
    "DROP TRIGGER leads_owner_insert ON leads",
    "DROP FUNCTION leads_owner_is_specialist()",
]


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if not _postgres():
        return
    op.drop_index("ix_leads_status_due", table_name="leads")
    op.create_index(
        "ix_leads_status_due",
        "leads",
        ["status", "due_on"],
        postgresql_where=STATUS_DUE_WHERE,
    )
    op.drop_constraint("fk_leads_owner_id_specialists", "leads", type_="foreignkey")
    for stmt in OWNER_CHECK:
        op.execute(stmt)


def downgrade() -> None:
    if not _postgres():
        return
    for stmt in DROP_OWNER_CHECK:
        op.execute(stmt)
    op.create_foreign_key(
        "fk_leads_owner_id_specialists",
        "leads",
        "specialists",
        ["owner_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.drop_index("ix_leads_status_due", table_name="leads")
    op.create_index("ix_leads_status_due", "leads", ["status", "due_on"])
