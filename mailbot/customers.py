"""Reading the customer directory from CSV or YAML files, with errors that name the line."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from mailbot.identify import CustomerRecord, normalize_customer_id

FIELDS = ("customer_id", "name", "domains", "contacts", "account_manager", "plan")
_LIST_SPLIT = re.compile(r"[;,\s]+")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class DirectoryFileError(Exception):
    """A customer file that cannot be imported; the message names file and line."""


def read_customer_file(path: Path) -> list[CustomerRecord]:
    """Customers from a `.csv`, `.yaml` or `.yml` file; refuses the whole file on any error."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DirectoryFileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if path.suffix.lower() == ".csv":
        return parse_customer_csv(text, str(path))
    if path.suffix.lower() in (".yaml", ".yml"):
        return parse_customer_yaml(text, str(path))
    raise DirectoryFileError(f"{path}: expected a .csv, .yaml or .yml file")


def parse_customer_csv(text: str, name: str = "<csv>") -> list[CustomerRecord]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    unknown = [h for h in header if h not in FIELDS]
    if "customer_id" not in header:
        raise DirectoryFileError(f"{name}:1: the header needs a customer_id column")
    if unknown:
        raise DirectoryFileError(f"{name}:1: unknown column(s): {', '.join(unknown)}")
    reader.fieldnames = header
    rows = ((reader.line_num, row) for row in reader)
    return _records(((line, _csv_row(row)) for line, row in rows), name)


def parse_customer_yaml(text: str, name: str = "<yaml>") -> list[CustomerRecord]:
    try:
        data = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise DirectoryFileError(f"{name}:{line}: {getattr(exc, 'problem', exc)}") from exc
    if data is None:
        return []
    if isinstance(data, yaml.MappingNode):
        items = {k.value: v for k, v in data.value}
        if set(items) != {"customers"}:
            raise DirectoryFileError(f"{name}:1: expected a list or a mapping with 'customers'")
        data = items["customers"]
    if not isinstance(data, yaml.SequenceNode):
        raise DirectoryFileError(f"{name}:{data.start_mark.line + 1}: expected a list")
    entries = []
    for node in data.value:
        line = node.start_mark.line + 1
        value = yaml.safe_load(yaml.serialize(node))
        if not isinstance(value, Mapping):
            raise DirectoryFileError(f"{name}:{line}: each customer must be a mapping")
        entries.append((line, dict(value)))
    return _records(entries, name)


def _csv_row(row: Mapping[str, str | None]) -> dict[str, Any]:
    return {k: (v or "").strip() for k, v in row.items() if k is not None}


def _records(entries: Iterable[tuple[int, dict[str, Any]]], name: str) -> list[CustomerRecord]:
    records: dict[str, CustomerRecord] = {}
    for line, entry in entries:
        record = _record(entry, f"{name}:{line}")
        key = normalize_customer_id(record.customer_id)
        if key in records:
            raise DirectoryFileError(f"{name}:{line}: duplicate customer_id {record.customer_id}")
        records[key] = record
    return list(records.values())


def _record(entry: dict[str, Any], where: str) -> CustomerRecord:
    unknown = sorted(set(entry) - set(FIELDS))
    if unknown:
        raise DirectoryFileError(f"{where}: unknown field(s): {', '.join(unknown)}")
    customer_id = str(entry.get("customer_id") or "").strip()
    if not customer_id:
        raise DirectoryFileError(f"{where}: customer_id is empty")
    contacts = tuple(c.lower() for c in _as_list(entry.get("contacts")))
    bad = [c for c in contacts if not _EMAIL.match(c)]
    if bad:
        raise DirectoryFileError(f"{where}: not an email address: {bad[0]}")
    manager = str(entry.get("account_manager") or "").strip() or None
    if manager and not _EMAIL.match(manager):
        raise DirectoryFileError(f"{where}: account_manager is not an email address: {manager}")
    return CustomerRecord(
        customer_id=normalize_customer_id(customer_id),
        name=str(entry.get("name") or "").strip(),
        domains=tuple(d.lower().lstrip("@") for d in _as_list(entry.get("domains"))),
        contacts=contacts,
        account_manager=manager.lower() if manager else None,
        plan=str(entry.get("plan") or "").strip() or None,
    )


def _as_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [part for part in _LIST_SPLIT.split(value.strip()) if part]
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [str(value).strip()]
