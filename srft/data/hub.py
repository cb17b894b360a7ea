"""Telling a Hugging Face Hub dataset id from a local file name."""

from __future__ import annotations

import re

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(:[\w.-]+)?$")
_DATA_SUFFIXES = (".jsonl", ".json", ".parquet", ".gz", ".csv", ".txt")


def is_hub_id(text: str) -> bool:
    """Whether `text` names a dataset on the Hub (`org/name`, or `org/name:split`) rather than
    a local file; callers ask only when no local file of that name exists."""
    return bool(_HUB_ID.match(text)) and not text.lower().endswith(_DATA_SUFFIXES)
