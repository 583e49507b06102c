"""PostgreSQL: a change counter beside the kept record counts

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

Only PostgreSQL changes here. `image_count.changes` moves on with every record inserted or
deleted, and every change to a record's prompts, provider, model, time or batch, in the deferred
trigger that keeps the counts (0003): it changes when, and only when, a transaction that changed
what those filters see commits. Two readings of its sum that agree mean that a search's total
counted at one still holds at the other (app/gallery.py keeps such totals, which PostgreSQL
counts slowly).
"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

COUNT_FUNCTION = """
CREATE OR REPLACE FUNCTION image_count_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO image_count (provider, images, changes) VALUES (NEW.provider, 1, 1)
        ON CONFLICT (provider) DO UPDATE
        SET images = image_count.images + 1, changes = image_count.changes + 1;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE image_count SET images = images - 1, changes = changes + 1
        WHERE provider = OLD.provider;
    END IF;
    RETURN NULL;
END
$$"""

# The function of 0003, as it was.
PREVIOUS_FUNCTION = """
CREATE OR REPLACE FUNCTION image_count_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO image_count (provider, images) VALUES (NEW.provider, 1)
        ON CONFLICT (provider) DO UPDATE SET images = image_count.images + 1;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE image_count SET images = images - 1 WHERE provider = OLD.provider;
    END IF;
    RETURN NULL;
END
$$"""


def update_trigger(columns: str) -> str:
    return ("CREATE CONSTRAINT TRIGGER image_count_update AFTER UPDATE OF " + columns +
            " ON image DEFERRABLE INITIALLY DEFERRED "
            "FOR EACH ROW EXECUTE FUNCTION image_count_change()")


def upgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("ALTER TABLE image_count ADD COLUMN changes bigint NOT NULL DEFAULT 0")
    op.execute(COUNT_FUNCTION)
    op.execute("DROP TRIGGER image_count_update ON image")
    op.execute(update_trigger(
        "provider, prompt, negative_prompt, model, created_at, batch_id"))


def downgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("DROP TRIGGER image_count_update ON image")
    op.execute(update_trigger("provider"))
    op.execute(PREVIOUS_FUNCTION)
    op.execute("ALTER TABLE image_count DROP COLUMN changes")
