"""mail-parser's diagnosis of an address header, kept for the values that recur.

mail-parser's pass over a mail parses every address header with its own recovering parser,
to report what it had to recover (`AddressHeaderDefect`): about 80 µs a mail, nearly half the
pass. The same values come back mail after mail (the support address in To, each customer's
From), so the answers for values up to 1,000 characters are kept, as `parse_addresses`
keeps ours. The kept answer is the one mail-parser gave; each caller gets its own copies.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

import mailparser.core
from mailparser.utils import get_addresses as _diagnosed

from mailbot.parsing.addresses import KEPT_VALUE_LENGTH


def kept_diagnosis(raw_header: Any, *, defects: list[dict[str, Any]] | None = None,
                   decode_names: bool = False) -> list[tuple[str, str]]:
    """`mailparser.utils.get_addresses`, answered from what was kept for a short value."""
    if not isinstance(raw_header, str) or len(raw_header) > KEPT_VALUE_LENGTH:
        return list(_diagnosed(raw_header, defects=defects, decode_names=decode_names))
    addresses, found = _kept(raw_header, decode_names)
    if defects is not None:
        defects.extend(copy.deepcopy(found))  # the pass adds the header's name to each
    return list(addresses)


@lru_cache(maxsize=4096)
def _kept(raw_header: str, decode_names: bool
          ) -> tuple[tuple[tuple[str, str], ...], tuple[dict[str, Any], ...]]:
    found: list[dict[str, Any]] = []
    addresses = _diagnosed(raw_header, defects=found, decode_names=decode_names)
    return tuple(addresses), tuple(found)


def keep_address_diagnoses() -> None:
    """Make mail-parser's pass (`MailParser._reset`) diagnose address headers through here."""
    mailparser.core.get_addresses = kept_diagnosis
