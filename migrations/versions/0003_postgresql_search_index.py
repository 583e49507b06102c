"""PostgreSQL: bigint ids, and full-text search (a stored tsvector column and a GIN index)

Revision ID: 0003
Revises: 0004
Create Date: 2026-11-25

Only PostgreSQL changes here (SQLite has 64-bit ids and its FTS5 index already). Ids become
bigint, as large as SQLite's, so that every id a URL may name fits the column. The generated column
holds the words of prompt and negative_prompt, split as SQLite's unicode61 tokenizer splits them
(ASCII punctuation separates words) and folded as it folds them (lower case, no accents): the
`imagegen_search` configuration is PostgreSQL's `simple` one with `unaccent` in front. Neither
the column nor its index is in the models; migrations/env.py leaves both out of comparisons.

PostgreSQL counts rows by reading them, which takes long on a large library, so the number of
records per provider is kept in `image_count` by a trigger: the total of an unfiltered (or
provider-only) page is read from there. It is filled from the existing records here. The
triggers are deferred to commit: a generation holds its provider's count row locked only while it
commits, not from the flush through the storing of its files (with S3, uploads), so concurrent
generations of one provider do not wait for each other's uploads.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0004'
branch_labels = None
depends_on = None

# ASCII punctuation written as ranges: the same on every database locale.
WORDS = r"""regexp_replace({column}, '[!-/:-@\[-`{{-~]', ' ', 'g')"""
SEARCH_VECTOR = (
    "to_tsvector('imagegen_search'::regconfig, {prompt} || ' ' || {negative})".format(
        prompt=WORDS.format(column='prompt'), negative=WORDS.format(column='negative_prompt'))
)

COUNT_FUNCTION = """
CREATE FUNCTION image_count_change() RETURNS trigger LANGUAGE plpgsql AS $$
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


def upgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("ALTER TABLE image ALTER COLUMN id TYPE bigint")
    op.execute("ALTER SEQUENCE image_id_seq AS bigint")
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
    op.execute("CREATE TEXT SEARCH CONFIGURATION imagegen_search (COPY = simple)")
    op.execute(
        "ALTER TEXT SEARCH CONFIGURATION imagegen_search ALTER MAPPING FOR word, numword, "
        "hword, hword_part, numhword, hword_numpart WITH unaccent, simple"
    )
    op.execute(
        f"ALTER TABLE image ADD COLUMN search_vector tsvector "
        f"GENERATED ALWAYS AS ({SEARCH_VECTOR}) STORED"
    )
    op.execute("CREATE INDEX ix_image_search ON image USING gin (search_vector)")
    op.execute(
        "CREATE TABLE image_count (provider varchar(32) PRIMARY KEY, images bigint NOT NULL)")
    op.execute("INSERT INTO image_count SELECT provider, count(*) FROM image GROUP BY provider")
    op.execute(COUNT_FUNCTION)
    op.execute("CREATE CONSTRAINT TRIGGER image_count_insert_delete AFTER INSERT OR DELETE ON image "
               "DEFERRABLE INITIALLY DEFERRED "
               "FOR EACH ROW EXECUTE FUNCTION image_count_change()")
    op.execute("CREATE CONSTRAINT TRIGGER image_count_update AFTER UPDATE OF provider ON image "
               "DEFERRABLE INITIALLY DEFERRED "
               "FOR EACH ROW EXECUTE FUNCTION image_count_change()")


def downgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("DROP TRIGGER IF EXISTS image_count_update ON image")
    op.execute("DROP TRIGGER IF EXISTS image_count_insert_delete ON image")
    op.execute("DROP FUNCTION IF EXISTS image_count_change()")
    op.execute("DROP TABLE IF EXISTS image_count")
    op.execute("DROP INDEX IF EXISTS ix_image_search")
    op.execute("ALTER TABLE image DROP COLUMN IF EXISTS search_vector")
    op.execute("DROP TEXT SEARCH CONFIGURATION IF EXISTS imagegen_search")
    op.execute("ALTER SEQUENCE image_id_seq AS integer")
    op.execute("ALTER TABLE image ALTER COLUMN id TYPE integer")
