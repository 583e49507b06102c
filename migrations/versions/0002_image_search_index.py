"""search indexes: a covering index for sorting matches, and on SQLite a full-text index

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

The full-text index is only made on SQLite (other databases keep searching with LIKE). It is an
external-content FTS5 table over image.prompt and image.negative_prompt, so the text is stored
once; the triggers keep it in step with every insert, update and delete, and `rebuild` fills it
from the existing records.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

TRIGGERS = {
    'image_fts_insert': """
        CREATE TRIGGER image_fts_insert AFTER INSERT ON image BEGIN
            INSERT INTO image_fts (rowid, prompt, negative_prompt)
            VALUES (new.id, new.prompt, new.negative_prompt);
        END""",
    'image_fts_delete': """
        CREATE TRIGGER image_fts_delete AFTER DELETE ON image BEGIN
            INSERT INTO image_fts (image_fts, rowid, prompt, negative_prompt)
            VALUES ('delete', old.id, old.prompt, old.negative_prompt);
        END""",
    'image_fts_update': """
        CREATE TRIGGER image_fts_update AFTER UPDATE OF prompt, negative_prompt ON image BEGIN
            INSERT INTO image_fts (image_fts, rowid, prompt, negative_prompt)
            VALUES ('delete', old.id, old.prompt, old.negative_prompt);
            INSERT INTO image_fts (rowid, prompt, negative_prompt)
            VALUES (new.id, new.prompt, new.negative_prompt);
        END""",
}


def upgrade():
    with op.batch_alter_table('image', schema=None) as batch_op:
        batch_op.create_index('ix_image_id_created_provider', ['id', 'created_at', 'provider'],
                              unique=False)
    if op.get_bind().dialect.name != 'sqlite':
        return
    op.execute(
        "CREATE VIRTUAL TABLE image_fts USING fts5("
        "prompt, negative_prompt, content='image', content_rowid='id', "
        "tokenize='unicode61 remove_diacritics 2', prefix='2 3')"
    )
    for sql in TRIGGERS.values():
        op.execute(sql)
    op.execute("INSERT INTO image_fts (image_fts) VALUES ('rebuild')")


def downgrade():
    if op.get_bind().dialect.name == 'sqlite':
        for name in TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS image_fts")
    with op.batch_alter_table('image', schema=None) as batch_op:
        batch_op.drop_index('ix_image_id_created_provider')
