"""The search query language, checked once and written out for both engines.

Syntax (web-search style, the same on PostgreSQL and SQLite): words must all match; "a phrase" matches
the words in a row; `or` between two terms matches either; -word or -"a phrase" excludes. A term is
cut into words the way the engines cut text (runs of letters and digits), so `e-mail` is the phrase
"e mail" on both. Anything that cannot be searched is `invalid` here, before a database sees it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aurora.errors import invalid
from aurora.storage.search import SearchQuery, fold

MAX_QUERY_CHARS = 200
_TOKEN = re.compile(r'(-?)"([^"]*)"|(-?)([^\s"]+)')
_WORD = re.compile(r"[^\W_]+")  # letters and digits: how both engines cut words


@dataclass
class _Term:
    words: list[str]
    negated: bool


def parse_search_query(value: Any) -> SearchQuery:
    if not isinstance(value, str) or not value.strip():
        raise invalid("q must be a non-empty search text")
    if len(value) > MAX_QUERY_CHARS:
        raise invalid(f"q must be at most {MAX_QUERY_CHARS} characters")
    if value.count('"') % 2:
        raise invalid('q has an unbalanced double quote')
    if "\x00" in value:
        raise invalid("q must not contain NUL characters")
    # Groups of alternatives: [[term, term], [term]] means (term OR term) AND term.
    groups: list[list[_Term]] = []
    excluded: list[_Term] = []
    pending_or = False
    for match in _TOKEN.finditer(value):
        negated = bool(match.group(1) or match.group(3))
        text = match.group(2) if match.group(2) is not None else match.group(4)
        if match.group(4) is not None and not negated and text.lower() == "or":
            pending_or = bool(groups)
            continue
        words = _WORD.findall(text)
        if not words:
            continue
        term = _Term(words, negated)
        if negated:
            excluded.append(term)
        elif pending_or:
            groups[-1].append(term)
        else:
            groups.append([term])
        pending_or = False
    if not groups:
        raise invalid("q must contain at least one word to look for (exclusions alone match nothing)")
    words = frozenset(fold(w) for group in groups for term in group for w in _WORD.findall(" ".join(term.words)))
    return SearchQuery(websearch=_websearch(groups, excluded), fts5=_fts5(groups, excluded), words=words)


def _quoted(term: _Term) -> str:
    # Words are \w runs: they never hold a double quote, so quoting needs no escaping.
    return '"' + " ".join(term.words) + '"'


def _websearch(groups: list[list[_Term]], excluded: list[_Term]) -> str:
    parts = [" or ".join(_quoted(t) for t in group) for group in groups]
    parts += ["-" + _quoted(t) for t in excluded]
    return " ".join(parts)


def _fts5(groups: list[list[_Term]], excluded: list[_Term]) -> str:
    positive = " AND ".join("(" + " OR ".join(_quoted(t) for t in group) + ")" for group in groups)
    if not excluded:
        return positive
    return f"({positive}) NOT (" + " OR ".join(_quoted(t) for t in excluded) + ")"
