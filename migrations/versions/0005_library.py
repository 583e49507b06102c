"""the curated library: favourites, collections, SHA-256 and source of each file, imports

Revision ID: 0005
Revises: 0006
Create Date: 2026-12-01

Imported images may not say their steps or CFG scale, so those become nullable (the seed already
is, since 0004). On SQLite that means rebuilding the image table, which drops its full-text
triggers: they are made again the same way migration 0002 made them, and AUTOINCREMENT is kept.
Existing records get the SHA-256 of their stored file (on disk or in the bucket); a record whose
file is missing keeps a null one, and the upgrade says how many.
"""
import hashlib

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0006'
branch_labels = None
depends_on = None

NULLABLE = (('steps', sa.Integer()), ('cfg_scale', sa.Float()))
FTS_TRIGGERS = (
    """CREATE TRIGGER image_fts_insert AFTER INSERT ON image BEGIN
            INSERT INTO image_fts (rowid, prompt, negative_prompt)
            VALUES (new.id, new.prompt, new.negative_prompt);
        END""",
    """CREATE TRIGGER image_fts_delete AFTER DELETE ON image BEGIN
            INSERT INTO image_fts (image_fts, rowid, prompt, negative_prompt)
            VALUES ('delete', old.id, old.prompt, old.negative_prompt);
        END""",
    """CREATE TRIGGER image_fts_update AFTER UPDATE OF prompt, negative_prompt ON image BEGIN
            INSERT INTO image_fts (image_fts, rowid, prompt, negative_prompt)
            VALUES ('delete', old.id, old.prompt, old.negative_prompt);
            INSERT INTO image_fts (rowid, prompt, negative_prompt)
            VALUES (new.id, new.prompt, new.negative_prompt);
        END""",
)


def _has_fts(bind) -> bool:
    return bind.dialect.name == 'sqlite' and bind.execute(
        sa.text("SELECT count(*) FROM sqlite_master WHERE name = 'image_fts'")).scalar() == 1


def _alter_image(nullable: bool, drop: tuple[str, ...] = ()) -> None:
    bind = op.get_bind()
    fts = _has_fts(bind)
    with op.batch_alter_table('image', schema=None, recreate='auto',
                              table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        for name, kind in NULLABLE:
            batch_op.alter_column(name, existing_type=kind, nullable=nullable)
        for name in drop:
            batch_op.drop_column(name)
    if fts:
        for name in ('image_fts_insert', 'image_fts_delete', 'image_fts_update'):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        for sql in FTS_TRIGGERS:
            op.execute(sql)


def _store():
    """The app's image store, when the migration runs inside the app (`flask db upgrade`)."""
    try:
        from flask import current_app

        return current_app.extensions['image_store']
    except (ImportError, KeyError, RuntimeError):
        return None


def _storage_error():
    try:
        from app.storage import StorageError
    except ImportError:
        return OSError
    return StorageError


def _fill_sha256() -> None:
    bind = op.get_bind()
    store = _store()
    rows = bind.execute(sa.text("SELECT id, filename FROM image ORDER BY id")).fetchall()
    if not rows:
        return
    unreadable = (OSError, _storage_error())
    missing = []
    for image_id, filename in rows:
        digest = hashlib.sha256()
        try:
            if store is None:
                raise FileNotFoundError(filename)
            with store.open(filename) as handle:
                for block in iter(lambda: handle.read(1 << 20), b''):
                    digest.update(block)
        except unreadable:
            missing.append(image_id)
            continue
        bind.execute(sa.text("UPDATE image SET sha256 = :sha WHERE id = :id"),
                     {"sha": digest.hexdigest(), "id": image_id})
    if missing:
        shown = ", ".join(str(i) for i in missing[:20]) + (" ..." if len(missing) > 20 else "")
        print(f"sha256: {len(missing)} of {len(rows)} records have no readable file; their "
              f"sha256 stays null (ids {shown}). `flask images verify` lists them.")


def upgrade():
    op.create_table('collection',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    # Plain ADD COLUMN (no table rebuild) where the database can.
    op.add_column('image', sa.Column('favorite', sa.Boolean(), server_default=sa.false(),
                                     nullable=False))
    op.add_column('image', sa.Column('sha256', sa.String(length=64), nullable=True))
    op.add_column('image', sa.Column('source', sa.String(length=16), nullable=True))
    _alter_image(nullable=True)
    op.create_table('collection_image',
    sa.Column('collection_id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
              nullable=False),
    sa.Column('added_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['collection_id'], ['collection.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['image_id'], ['image.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('collection_id', 'image_id')
    )
    op.create_index('ix_collection_image_image', 'collection_image', ['image_id'], unique=False)
    # Model and favourite in the covering indexes: a search (or a collection) combined with
    # them, and both together, are then answered from the indexes without reading whole rows.
    op.drop_index('ix_image_id_created_provider', table_name='image')
    op.create_index('ix_image_id_created_provider', 'image',
                    ['id', 'created_at', 'provider', 'model', 'favorite'], unique=False)
    op.create_index('ix_image_model_created', 'image', ['model', 'created_at', 'id', 'favorite'],
                    unique=False)
    op.create_index('ix_image_favorite_created', 'image', ['favorite', 'created_at', 'id'],
                    unique=False)
    op.create_index('ix_image_sha256', 'image', ['sha256'], unique=False)
    _fill_sha256()


def downgrade():
    op.drop_index('ix_image_sha256', table_name='image')
    op.drop_index('ix_image_favorite_created', table_name='image')
    op.drop_index('ix_image_model_created', table_name='image')
    op.drop_index('ix_image_id_created_provider', table_name='image')
    op.create_index('ix_image_id_created_provider', 'image', ['id', 'created_at', 'provider'],
                    unique=False)
    op.drop_index('ix_collection_image_image', table_name='collection_image')
    op.drop_table('collection_image')
    op.execute("UPDATE image SET steps = COALESCE(steps, 0), cfg_scale = COALESCE(cfg_scale, 0)")
    _alter_image(nullable=False, drop=('source', 'sha256', 'favorite'))
    op.drop_table('collection')
