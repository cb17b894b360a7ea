"""The preference-pair shapes of the field, flattened to srft's row
`{"prompt", "chosen", "rejected", "score_chosen"?, "score_rejected"?}`.

- HH-RLHF: `{"chosen": "\\n\\nHuman: ...\\n\\nAssistant: ...", "rejected": ...}`, two whole
  dialogues that differ in the last assistant turn. The shared dialogue up to and including the
  last "Assistant:" both share is the prompt; the rest of each is its response.
- Message lists (UltraFeedback-binarized on the Hub): `chosen`/`rejected` are lists of
  `{"role", "content"}`; the response is the last assistant message, and the prompt is `prompt`
  when the row has it, else the conversation before that message.
- srft's own flat rows pass through unchanged.

Each function returns the flat row, or a one-line reason why the row cannot be flattened.
"""

from __future__ import annotations

import os
from typing import Any

HH_ASSISTANT = "\n\nAssistant:"
HH_HUMAN = "\n\nHuman:"


def flatten_row(row: dict[str, Any]) -> dict[str, Any] | str:
    """The flat form of a row in any supported shape (see the module docstring)."""
    chosen, rejected = row.get("chosen"), row.get("rejected")
    if isinstance(chosen, list) or isinstance(rejected, list):
        return _from_messages(row)
    if (
        "prompt" not in row
        and isinstance(chosen, str)
        and isinstance(rejected, str)
        and HH_ASSISTANT in chosen
    ):
        split = split_dialogues(chosen, rejected)
        if isinstance(split, str):
            return split
        prompt, chosen_reply, rejected_reply = split
        return {**row, "prompt": prompt, "chosen": chosen_reply, "rejected": rejected_reply}
    return row


def split_dialogues(chosen: str, rejected: str) -> tuple[str, str, str] | str:
    """(prompt, chosen response, rejected response) of two HH-RLHF dialogues: the prompt is
    their shared text up to and including the last "\\n\\nAssistant:" in it."""
    shared = os.path.commonprefix([chosen, rejected])
    cut = shared.rfind(HH_ASSISTANT)
    if cut < 0:
        return "chosen and rejected share no dialogue that ends in an 'Assistant:' turn"
    end = cut + len(HH_ASSISTANT)
    return chosen[:end].lstrip(), chosen[end:].strip(), rejected[end:].strip()


def _from_messages(row: dict[str, Any]) -> dict[str, Any] | str:
    flat = dict(row)
    for name in ("chosen", "rejected"):
        value = row.get(name)
        if isinstance(value, str):
            continue
        messages = _messages(value, name)
        if isinstance(messages, str):
            return messages
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
        if last is None:
            return f"field '{name}': the message list has no assistant message"
        flat[name] = messages[last]["content"]
        if not isinstance(row.get("prompt"), str):
            flat["prompt"] = _render(messages[:last])
    return flat


def _messages(value: Any, name: str) -> list[dict[str, str]] | str:
    if not isinstance(value, list) or not value:
        return f"field '{name}' must be a string or a non-empty list of messages"
    for i, message in enumerate(value):
        if (
            not isinstance(message, dict)
            or not isinstance(message.get("role"), str)
            or not isinstance(message.get("content"), str)
        ):
            return f"field '{name}': message {i} is not an object with string 'role' and 'content'"
    return value


def _render(messages: list[dict[str, str]]) -> str:
    """The conversation before a response: a lone user message as it is, else HH-style turns."""
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    turns = {"user": HH_HUMAN, "assistant": HH_ASSISTANT, "system": "\n\nSystem:"}
    text = "".join(f"{turns.get(m['role'], m['role'] + ':')} {m['content']}" for m in messages)
    return (text + HH_ASSISTANT).lstrip()
