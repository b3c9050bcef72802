"""Conversations by mail: signed Message-IDs, routing replies to tickets, agents' commands."""

from mailbot.conversation.commands import Command, CommandKind, parse_commands
from mailbot.conversation.ids import SignedRef, ThreadSigner
from mailbot.conversation.routing import Route, RouteKind, route_message, subject_tag

__all__ = ["Command", "CommandKind", "Route", "RouteKind", "SignedRef", "ThreadSigner",
           "parse_commands", "route_message", "subject_tag"]
