"""What a document is, and the gate every document passes before it enters the corpus.

A document is a dict with `text`, `source` (where it came from), `domain` (one of DOMAINS) and
`low_value` (True for content planted as low value: the label the quality tagger learns from).
Every text with a `<think>` block is a synthetic reasoning response and must say so in its domain.
`admit` turns raw input into such documents and never crashes on bad input: empty texts and
bytes that are not UTF-8 are skipped and counted; a text longer than `max_chars` is split at
line breaks into parts, so one huge file cannot dominate a packed sequence or the dedup index.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from ..chat import THINK
from ..profile import DOMAINS


def document(text, source: str, domain: str, low_value: bool = False, planted: str = "") -> dict:
    """One raw document. `planted` marks a copy planted for dedup to find ("exact" or "near")."""
    if domain not in DOMAINS:
        raise ValueError(f"Unknown domain {domain!r} for source {source!r}; use one of {DOMAINS}.")
    if isinstance(text, str) and THINK in text and domain != "synthetic_reasoning":
        raise ValueError(f"A {source!r} document holds a {THINK} block: it is a synthetic reasoning "
                         f"response, which MiMo keeps out of stages 1–2 (report §2.1). Give it the "
                         f"domain 'synthetic_reasoning', not {domain!r}.")
    return {"text": text, "source": source, "domain": domain, "low_value": low_value,
            "planted": planted}


def admit(raw: Iterable[dict], max_chars: int) -> tuple[list[dict], Counter]:
    """Documents that can enter the corpus, and a count of what was skipped or split, by reason.

    text may be `str` or `bytes` (decoded as strict UTF-8). Reasons: "invalid_utf8", "empty",
    "split_long" (one count per document split into parts).
    """
    kept, counts = [], Counter()
    for doc in raw:
        text = doc["text"]
        if isinstance(text, (bytes, bytearray)):
            try:
                text = bytes(text).decode("utf-8")
            except UnicodeDecodeError:
                counts["invalid_utf8"] += 1
                continue
        elif not isinstance(text, str):
            raise TypeError(f"A document's text must be str or bytes, got {type(text).__name__} "
                            f"from source {doc.get('source')!r}.")
        if not _encodable(text):
            counts["invalid_utf8"] += 1      # lone surrogates: text decoded with surrogateescape
            continue
        text = text.replace("\r\n", "\n").strip("\n")
        if not text.strip():
            counts["empty"] += 1
            continue
        parts = split_long(text, max_chars)
        if len(parts) > 1:
            counts["split_long"] += 1
        kept.extend({**doc, "text": part} for part in parts)
    return kept, counts


def split_long(text: str, max_chars: int) -> list[str]:
    """Cut `text` into parts of at most `max_chars`, at the last line break when there is one."""
    parts, start = [], 0
    while len(text) - start > max_chars:
        end = start + max_chars
        cut = text.rfind("\n", start + max_chars // 2, end)
        cut = end if cut == -1 else cut
        parts.append(text[start:cut])
        start = cut
    parts.append(text[start:])
    return [part.strip("\n") for part in parts if part.strip()]


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False
