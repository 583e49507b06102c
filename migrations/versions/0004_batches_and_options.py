"""batches and model options: image.options, image.batch_id/batch_index, a nullable seed

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-01

A model that takes no seed (OpenAI's, some Replicate models) stores `seed` as NULL. Making the
column nullable rebuilds the table on SQLite, which drops its triggers: the full-text triggers
of 0002 are made again afterwards, and AUTOINCREMENT is kept.
"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0002'
branch_labels = None
depends_on = None

FTS_TRIGGERS = (
    """CREATE TRIGGER IF NOT EXISTS image_fts_insert AFTER INSERT ON image BEGIN
        INSERT INTO image_fts (rowid, prompt, negative_prompt)
        VALUES (new.id, new.prompt, new.negative_prompt);
    END""",
    """CREATE TRIGGER IF NOT EXISTS image_fts_delete AFTER DELETE ON image BEGIN
        INSERT INTO image_fts (image_fts, rowid, prompt, negative_prompt)
        VALUES ('delete', old.id, old.prompt, old.negative_prompt);
    END""",
    """CREATE TRIGGER IF NOT EXISTS image_fts_update
        AFTER UPDATE OF prompt, negative_prompt ON image BEGIN
        INSERT INTO image_fts (image_fts, rowid, prompt, negative_prompt)
        VALUES ('delete', old.id, old.prompt, old.negative_prompt);
        INSERT INTO image_fts (rowid, prompt, negative_prompt)
        VALUES (new.id, new.prompt, new.negative_prompt);
    END""",
)


def _restore_fts_triggers():
    bind = op.get_bind()
    if bind.dialect.name != 'sqlite':
        return
    has_fts = bind.execute(
        sa.text("SELECT count(*) FROM sqlite_master WHERE name = 'image_fts'")).scalar()
    if has_fts:
        for sql in FTS_TRIGGERS:
            op.execute(sql)


def upgrade():
    with op.batch_alter_table('image', schema=None,
                              table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.add_column(sa.Column('options', sa.JSON(), nullable=False,
                                      server_default=sa.text("'{}'")))
        batch_op.add_column(sa.Column('batch_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('batch_index', sa.Integer(), nullable=True))
        batch_op.alter_column('seed', existing_type=sa.BigInteger(), nullable=True)
        batch_op.create_index('ix_image_batch', ['batch_id', 'batch_index'], unique=False)
    _restore_fts_triggers()
    op.execute("UPDATE image SET seed = NULL WHERE seed = 0")  # as a downgrade left them


def downgrade():
    # The older schema has no "no seed"; 0, which no generation uses, stands for it there, so that
    # the records (and their files) are kept.
    op.execute("UPDATE image SET seed = 0 WHERE seed IS NULL")
    with op.batch_alter_table('image', schema=None,
                              table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.drop_index('ix_image_batch')
        batch_op.alter_column('seed', existing_type=sa.BigInteger(), nullable=False)
        batch_op.drop_column('batch_index')
        batch_op.drop_column('batch_id')
        batch_op.drop_column('options')
    _restore_fts_triggers()
