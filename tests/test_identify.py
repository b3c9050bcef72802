"""Customer identification: IDs in the text, the directory, contacts and domains."""

from __future__ import annotations

import pytest

from mailbot.identify import (
    CustomerDirectory,
    CustomerRecord,
    CustomerSource,
    compile_patterns,
    find_customer_ids,
    identify_customer,
)
from mailbot.parsing import Address, ParsedMessage

PATTERNS = compile_patterns([
    r"\b(?:customer[\s_-]*id|cust\.?\s*id|cid)\b[\s:#=-]*(?:is\s+)?#?\s*"
    r"([A-Z]{1,6}-?\d{3,}|\d{3,})\b"])

DIRECTORY = CustomerDirectory([
    CustomerRecord("RC-10442", "Acme", domains=("acme.example",),
                   contacts=("ops@acme.example",), account_manager="am@support.example"),
    CustomerRecord("RC-20017", "Lanka", domains=("shared.example",)),
    CustomerRecord("RC-30001", "Other", domains=("shared.example",)),
])


def message(subject: str = "", body: str = "", sender: str = "someone@else.example"
            ) -> ParsedMessage:
    return ParsedMessage(
        message_id="m@x", subject=subject, from_=Address("", sender), reply_to=(), to=(),
        cc=(), date=None, in_reply_to=None, references=(), headers={}, body_text=body,
        body_html=None, attachments=(), defects=(), size=0)


def test_id_in_subject_that_the_directory_knows_is_verified() -> None:
    """An ID the directory knows identifies the customer, verified."""
    match = identify_customer(message("Outage (Customer ID: RC-10442)"), PATTERNS, DIRECTORY)
    assert (match.customer_id, match.source, match.verified) == (
        "RC-10442", CustomerSource.DIRECTORY, True)


def test_id_in_body_is_found_when_subject_has_none() -> None:
    match = identify_customer(message("Help", "our customer id is rc-10442, thanks"),
                              PATTERNS, DIRECTORY)
    assert match.customer_id == "RC-10442"


def test_bare_number_matches_the_directory_id_ending_in_it() -> None:
    """Customers often quote "10442" for "RC-10442"; one match only, never a guess."""
    match = identify_customer(message("Cust. ID #10442"), PATTERNS, DIRECTORY)
    assert (match.customer_id, match.source, match.claimed_id) == (
        "RC-10442", CustomerSource.DIRECTORY, "10442")


def test_unknown_id_is_kept_but_not_verified() -> None:
    match = identify_customer(message("CID 99999"), PATTERNS, DIRECTORY)
    assert (match.customer_id, match.source, match.verified) == (
        "99999", CustomerSource.UNKNOWN_ID, False)


def test_known_contact_identifies_customer_without_id() -> None:
    match = identify_customer(message("Help", sender="OPS@acme.example"), PATTERNS, DIRECTORY)
    assert (match.customer_id, match.source, match.missing_id) == (
        "RC-10442", CustomerSource.CONTACT, True)


def test_sender_domain_identifies_customer_without_id() -> None:
    match = identify_customer(message("Help", sender="new.person@acme.example"), PATTERNS,
                              DIRECTORY)
    assert (match.customer_id, match.source) == ("RC-10442", CustomerSource.DOMAIN)


def test_domain_shared_by_two_customers_identifies_nobody() -> None:
    match = identify_customer(message("Help", sender="x@shared.example"), PATTERNS, DIRECTORY)
    assert (match.customer_id, match.source) == (None, CustomerSource.MISSING)


def test_known_contact_wins_over_an_unknown_claimed_id() -> None:
    match = identify_customer(message("CID 55555", sender="ops@acme.example"), PATTERNS,
                              DIRECTORY)
    assert (match.customer_id, match.source, match.claimed_id) == (
        "RC-10442", CustomerSource.CONTACT, "55555")


def test_first_known_id_wins_when_several_are_quoted() -> None:
    text = "Customer ID: 77777 ... earlier mail: Customer ID: RC-10442"
    match = identify_customer(message("Help", text), PATTERNS, DIRECTORY)
    assert match.customer_id == "RC-10442"


@pytest.mark.parametrize(("text", "expected"), [
    ("Customer ID: RC-10442", ["RC-10442"]),
    ("customer id is 10442", ["10442"]),
    ("Cust. ID #10442", ["10442"]),
    ("CID 10442", ["10442"]),
    ("please find the customer id number below", []),
    ("no id here", []),
])
def test_find_customer_ids(text: str, expected: list[str]) -> None:
    assert find_customer_ids(text, PATTERNS) == expected
