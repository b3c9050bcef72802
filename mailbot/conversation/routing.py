"""Where a message belongs: a new ticket, a follow-up, an agent's reply, or mail about ours.

Pure: the caller says which senders are already on a ticket. Certainty comes first: a
signed reference names its ticket; the subject tag `[#42]` counts only for senders who are
already on ticket 42, so a stranger cannot attach mail to somebody else's ticket.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import StrEnum

from mailbot.conversation.ids import SignedRef, ThreadSigner
from mailbot.parsing import ParsedMessage
from mailbot.replies.loops import Sender, is_agent, is_bounce
from mailbot.replies.returned import returned_text

_TAG = re.compile(r"\[#(\d{1,12})\]")


class RouteKind(StrEnum):
    NEW = "new"
    FOLLOW_UP = "follow_up"  # the customer (or someone already on the ticket) writes again
    AGENT_REPLY = "agent_reply"  # an agent answers, threaded by our signed ids
    AUTOMATIC_REPLY = "automatic_reply"  # an out-of-office or similar answer to our mail
    BOUNCE = "bounce"  # a delivery failure of our mail


@dataclass(frozen=True, slots=True)
class Route:
    """The routing decision for one message and what it rests on."""

    kind: RouteKind
    ticket_number: int | None = None
    via: str | None = None
    ref: SignedRef | None = None
    automatic: str | None = None  # why the mail counts as automatic, when it does


def subject_tag(subject: str) -> int | None:
    """The ticket number of a `[#42]` tag in a subject, the last one when there are several."""
    tags = _TAG.findall(subject)
    return int(tags[-1]) if tags else None


def route_message(message: ParsedMessage, raw: bytes, signer: ThreadSigner, who: Sender,
                  participants: Callable[[int], Collection[str] | None], *,
                  automatic: str | None,
                  exists: Callable[[int], bool] | None = None) -> Route:
    """Decide where a message goes.

    `automatic` is the message's `automatic_reason`. `participants(n)` gives the addresses
    already on ticket n, or None when there is no such ticket; `exists(n)`, when given,
    answers only whether there is (a reply naming one of our mails needs no more). `raw` is
    searched for our ids when the message is a bounce.
    """
    def known(number: int) -> bool:
        return exists(number) if exists is not None else participants(number) is not None

    own = signer.verify(message.message_id) if message.message_id else None
    if own is not None and known(own.ticket_number):
        # One of our own mails delivered back to the mailbox (a copy to ourselves).
        return Route(RouteKind.AUTOMATIC_REPLY, own.ticket_number, "our own mail", own,
                     "sent by mailbot")
    ids = [i for i in (message.in_reply_to, *reversed(message.references)) if i]
    ref = signer.first_ref(ids)
    if ref is not None and not known(ref.ticket_number):
        ref = None
    if automatic is not None:
        if is_bounce(message):
            returned = [r for r in signer.refs_in(returned_text(message, raw))
                        if participants(r.ticket_number) is not None]
            if returned:
                return Route(RouteKind.BOUNCE, returned[0].ticket_number, "returned mail",
                             returned[0], automatic)
        if ref is not None:
            return Route(RouteKind.AUTOMATIC_REPLY, ref.ticket_number, "signed reference",
                         ref, automatic)
        return Route(RouteKind.NEW, automatic=automatic)
    if ref is not None:
        kind = RouteKind.AGENT_REPLY if is_agent(message, who) else RouteKind.FOLLOW_UP
        return Route(kind, ref.ticket_number, "signed reference", ref)
    number = subject_tag(message.subject)
    sender = message.from_.email if message.from_ else None
    if number is not None and sender is not None:
        on_ticket = participants(number)
        if on_ticket is not None and sender in {a.lower() for a in on_ticket}:
            return Route(RouteKind.FOLLOW_UP, number, "subject tag")
    return Route(RouteKind.NEW)
