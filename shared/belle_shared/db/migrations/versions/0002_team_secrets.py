"""team secrets

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 08:00:00
"""

from alembic import op
import sqlalchemy as sa
import belle_shared.db.types

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('team_secrets',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('team_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('ciphertext', sa.Text(), nullable=False),
    sa.Column('created_at', belle_shared.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', belle_shared.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('team_id', 'name')
    )
    with op.batch_alter_table('team_secrets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_team_secrets_team_id'), ['team_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('team_secrets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_team_secrets_team_id'))
    op.drop_table('team_secrets')
