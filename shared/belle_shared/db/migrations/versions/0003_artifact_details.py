"""artifact details (a checkpoint's step and metrics)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 08:30:00
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('artifacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('details', sa.JSON(none_as_null=True).with_variant(
            postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), 'postgresql'), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('artifacts', schema=None) as batch_op:
        batch_op.drop_column('details')
