"""spending: cost and author on each image, the charge ledger, idempotency keys

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-01

`charge` holds what each generation request spent (reserved before the provider call, settled
after); budgets read it. `charge_day` sums the settled charges per day, provider, model and
caller, so usage reports read a few thousand rows, not every charge. `idempotency_key` remembers each caller's keys for 24 hours.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('image') as batch:
        batch.add_column(sa.Column('cost', sa.Float(), nullable=True))
        batch.add_column(sa.Column('cost_detail', sa.String(length=200), nullable=True))
        batch.add_column(sa.Column('created_by', sa.String(length=64), nullable=True))
    op.create_table(
        'charge',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('day', sa.String(length=10), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('created_by', sa.String(length=64), nullable=False),
        sa.Column('provider', sa.String(length=32), nullable=False),
        sa.Column('model', sa.String(length=200), nullable=False),
        sa.Column('images', sa.Integer(), nullable=False),
        sa.Column('amount', sa.Float(), nullable=False),
        sa.Column('settled', sa.Boolean(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_charge_open', 'charge', ['settled', 'day', 'created_by'])
    op.create_index('ix_charge_usage', 'charge', ['created_at', 'settled', 'provider', 'model',
                                                  'created_by', 'images', 'amount'])
    op.create_table(
        'charge_day',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('day', sa.String(length=10), nullable=False),
        sa.Column('provider', sa.String(length=32), nullable=False),
        sa.Column('model', sa.String(length=200), nullable=False),
        sa.Column('created_by', sa.String(length=64), nullable=False),
        sa.Column('images', sa.Integer(), nullable=False),
        sa.Column('amount', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('day', 'provider', 'model', 'created_by', name='uq_charge_day'),
    )
    op.create_table(
        'idempotency_key',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('caller', sa.String(length=255), nullable=False),
        sa.Column('key', sa.String(length=255), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.Column('locked_until', sa.DateTime(), nullable=False),
        sa.Column('status', sa.Integer(), nullable=True),
        sa.Column('content_type', sa.String(length=100), nullable=True),
        sa.Column('location', sa.String(length=500), nullable=True),
        sa.Column('body', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('caller', 'key', name='uq_idempotency_caller_key'),
    )
    op.create_index('ix_idempotency_expires', 'idempotency_key', ['expires_at'])


def downgrade():
    op.drop_index('ix_idempotency_expires', table_name='idempotency_key')
    op.drop_table('idempotency_key')
    op.drop_table('charge_day')
    op.drop_index('ix_charge_usage', table_name='charge')
    op.drop_index('ix_charge_open', table_name='charge')
    op.drop_table('charge')
    with op.batch_alter_table('image') as batch:
        batch.drop_column('created_by')
        batch.drop_column('cost_detail')
        batch.drop_column('cost')
