"""Loose parsing of PAM's answers into fields (spec 6: the answer format is not documented).

"explain" answers are usually "label: definition ... function ..." in one or two sentences
(EN) or "标签：定义……用途……" (ZH). The raw text is always kept; parsing never fails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FIELD = re.compile(
    r"(?P<name>label|category|definition|function|usage|标签|类别|定义|功能|用途)\s*[:：]\s*",
    re.IGNORECASE,
)
_FIELD_NAMES = {
    "label": "label",
    "category": "label",
    "标签": "label",
    "类别": "label",
    "definition": "definition",
    "定义": "definition",
    "function": "function",
    "usage": "function",
    "功能": "function",
    "用途": "function",
}
_HEAD_SPLIT = re.compile(r"\s*(?:[:：]|\s-\s|\n)\s*")
_SENTENCE = re.compile(r"(?<=[.!?。！？；;])\s*")
_FUNCTION_HINT = re.compile(
    r"\b(used|use|uses|for|function|purpose|serves?)\b|用于|用来|功能|用途|作用", re.IGNORECASE
)


@dataclass(frozen=True)
class ParsedAnswer:
    label: str | None = None
    definition: str | None = None
    function: str | None = None


def _clean(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.strip().strip("\"'").strip()
    return text or None


def parse_label(text: str) -> str | None:
    """A category answer: the text without a field name or trailing full stop."""
    fields = _labelled_fields(text)
    label = fields.get("label", text)
    return _clean(label.splitlines()[0].rstrip(".。") if label.strip() else label)


def _labelled_fields(text: str) -> dict[str, str]:
    matches = list(_FIELD.finditer(text))
    fields: dict[str, str] = {}
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        name = _FIELD_NAMES[m.group("name").lower()]
        fields.setdefault(name, text[m.end() : end].strip(" \n,，;；"))
    return fields


def parse_explain(text: str) -> ParsedAnswer:
    """Label, definition and function out of an "explain" answer, as far as they can be seen."""
    fields = _labelled_fields(text)
    if fields:
        return ParsedAnswer(
            _clean(fields.get("label")),
            _clean(fields.get("definition")),
            _clean(fields.get("function")),
        )
    head = _HEAD_SPLIT.split(text.strip(), maxsplit=1)
    if len(head) < 2:  # no "label: ..." shape: the first sentence defines, a hint marks use
        sentences = [s for s in _SENTENCE.split(text.strip()) if s]
        label, sentences = None, sentences
    else:
        label = head[0]
        sentences = [s for s in _SENTENCE.split(head[1]) if s]
    definition = sentences[0] if sentences else None
    function = next((s for s in sentences[1:] if _FUNCTION_HINT.search(s)), None)
    if function is None and definition and _FUNCTION_HINT.search(definition):
        function = definition
    return ParsedAnswer(_clean(label), _clean(definition), _clean(function))
