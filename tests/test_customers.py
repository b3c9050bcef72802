"""Reading the customer directory from CSV and YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbot.customers import (
    DirectoryFileError,
    parse_customer_csv,
    parse_customer_yaml,
    read_customer_file,
)
from mailbot.identify import CustomerRecord


def test_csv_with_lists_separated_by_semicolons() -> None:
    text = ("customer_id,name,domains,contacts,account_manager,plan\n"
            "rc-10442,Acme,acme.example;acme.lk,Ops@Acme.example,am@support.example,extended\n")
    assert parse_customer_csv(text) == [CustomerRecord(
        "RC-10442", "Acme", ("acme.example", "acme.lk"), ("ops@acme.example",),
        "am@support.example", "extended")]


def test_csv_without_customer_id_column_is_refused() -> None:
    with pytest.raises(DirectoryFileError, match=r"x.csv:1: .*customer_id"):
        parse_customer_csv("name,plan\nAcme,standard\n", "x.csv")


def test_csv_error_names_the_line() -> None:
    text = "customer_id,contacts\nA-1,ok@a.example\nA-2,not-an-address\n"
    with pytest.raises(DirectoryFileError, match=r"c.csv:3: not an email address"):
        parse_customer_csv(text, "c.csv")


def test_yaml_list_under_customers_key() -> None:
    text = "customers:\n  - customer_id: A-1\n    domains: [a.example]\n"
    assert parse_customer_yaml(text) == [CustomerRecord("A-1", domains=("a.example",))]


def test_yaml_unknown_field_is_refused_with_its_line() -> None:
    text = "- customer_id: A-1\n- customer_id: A-2\n  colour: blue\n"
    with pytest.raises(DirectoryFileError, match=r"d.yaml:2: unknown field\(s\): colour"):
        parse_customer_yaml(text, "d.yaml")


def test_duplicate_customer_id_is_refused() -> None:
    with pytest.raises(DirectoryFileError, match="duplicate customer_id"):
        parse_customer_yaml("- customer_id: a-1\n- customer_id: A-1\n")


def test_file_with_other_suffix_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "customers.txt"
    path.write_text("customer_id\nA-1\n")
    with pytest.raises(DirectoryFileError, match=r"expected a \.csv"):
        read_customer_file(path)
