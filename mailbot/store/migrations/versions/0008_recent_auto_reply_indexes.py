"""tickets, outbox: indexes that read only a requester's recent auto-replies

The auto-reply rate limit looked at every ticket a requester ever had, and at each of their
outbox rows. With the requester's tickets indexed by creation time and a ticket's outbox rows
by kind and time, it reads only the last hour's, from the indexes alone.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tickets_requester_created", "tickets", ["requester", "created_at"])
    op.drop_index("ix_tickets_requester", table_name="tickets")
    op.create_index("ix_outbox_ticket_kind", "outbox", ["ticket_id", "kind", "created_at"])
    op.drop_index("ix_outbox_ticket_id", table_name="outbox")


def downgrade() -> None:
    op.create_index("ix_outbox_ticket_id", "outbox", ["ticket_id"])
    op.drop_index("ix_outbox_ticket_kind", table_name="outbox")
    op.create_index("ix_tickets_requester", "tickets", ["requester"])
    op.drop_index("ix_tickets_requester_created", table_name="tickets")
