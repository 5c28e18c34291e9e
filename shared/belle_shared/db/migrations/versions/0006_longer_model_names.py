"""longer model names (models.name 255 -> 512)

A fine-tuned model's name is ft:<base>:<team>:<suffix>:<8 hex>, up to 3 + 200 + 1 + 100 + 1 + 64 + 1 + 8
= 378 characters, and a quantized one adds :gptq-w<bits>g<group>:<8 hex> (up to 23 more): a valid spec
with long names failed at the end of its run when the worker registered its model. 512 holds them all.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 01:30:00
"""

from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.alter_column('name', existing_type=sa.String(length=255), type_=sa.String(length=512),
                              existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.alter_column('name', existing_type=sa.String(length=512), type_=sa.String(length=255),
                              existing_nullable=False)
