"""`srft init`: the seed's srf_config.yaml with our defaults, every key commented from the schema."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel

from srft.config import SrftConfig

HEADER = """\
# srf_config.yaml: one srft run, from SFT to evaluation.
# Every key of the seed template keeps its name and meaning; the defaults run the embedded
# world on a CPU. Check it with `srft validate-config`, run it with `srft run`.
"""


def render_template(config: SrftConfig | None = None) -> str:
    """The config as commented YAML, each key followed by its description."""
    config = config or SrftConfig()
    data = config.to_dict()  # values as YAML writes them (tuples as lists, sections as mappings)
    lines = [HEADER]
    for name, field in SrftConfig.model_fields.items():
        value = getattr(config, name)
        if isinstance(value, BaseModel):
            lines.append(f"{name}:")
            for key, sub in type(value).model_fields.items():
                lines.append(_line(f"  {key}", data[name][key], sub.description))
            lines.append("")
        else:
            lines.append(_line(name, data[name], field.description))
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _line(key: str, value: Any, description: str | None) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    text = text.removesuffix("\n...").removesuffix("...").strip()
    comment = f"  # {description}" if description else ""
    return f"{key}: {text}{comment}"


def config_table() -> str:
    """The README's configuration table: every key with its default and description."""
    config = SrftConfig()
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for name, field in SrftConfig.model_fields.items():
        value = getattr(config, name)
        if isinstance(value, BaseModel):
            for key, sub in type(value).model_fields.items():
                rows.append(f"| `{name}.{key}` | `{getattr(value, key)}` | {sub.description} |")
        else:
            rows.append(f"| `{name}` | `{value}` | {field.description} |")
    return "\n".join(rows) + "\n"
