"""conversations: message roles and display text, linked tickets, assignee, waiting, secrets

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("assignee", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("waiting_since", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("sla_policy", sa.String(length=64), nullable=True))
        batch_op.create_foreign_key("fk_tickets_parent_id", "tickets", ["parent_id"], ["id"])
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("role", sa.String(length=16), nullable=False,
                                      server_default="customer"))
        batch_op.add_column(sa.Column("display_text", sa.Text(), nullable=False,
                                      server_default=""))
    op.create_table(
        "installation_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("installation_secrets")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("display_text")
        batch_op.drop_column("role")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_constraint("fk_tickets_parent_id", type_="foreignkey")
        batch_op.drop_column("sla_policy")
        batch_op.drop_column("waiting_since")
        batch_op.drop_column("assignee")
        batch_op.drop_column("parent_id")
