"""tickets: index on the requester, for the auto-reply rate limit and follow-up checks

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tickets_requester", "tickets", ["requester"])


def downgrade() -> None:
    op.drop_index("ix_tickets_requester", table_name="tickets")
