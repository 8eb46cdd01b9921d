"""Batch helpers: fixed-size chunks, and OData ``or`` filters that stay under a URL length."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar
from urllib.parse import quote

__all__ = ["DEFAULT_MAX_FILTER_LENGTH", "chunks", "odata_or_filters", "odata_string"]

T = TypeVar("T")

DEFAULT_MAX_FILTER_LENGTH = 1500
"""Characters of one ``$filter`` value once URL-encoded: keeps the whole URL well under the
2,048 characters proxies and IIS-hosted APIs are known to accept."""


def chunks(iterable: Iterable[T], n: int) -> Iterator[list[T]]:
    """``iterable`` in lists of ``n`` (the last one shorter): ``chunks(range(5), 2)`` → [0, 1], [2, 3], [4]."""
    if n < 1:
        raise ValueError(f"chunk size must be at least 1, got {n}")
    iterator = iter(iterable)
    while chunk := list(islice(iterator, n)):
        yield chunk


def odata_string(value: str) -> str:
    """An OData string literal: single-quoted, embedded quotes doubled (``O'Brien`` → ``'O''Brien'``)."""
    return "'" + value.replace("'", "''") + "'"


def odata_or_filters(
    field: str,
    keys: Iterable[str],
    *,
    max_length: int = DEFAULT_MAX_FILTER_LENGTH,
    max_keys: int | None = None,
) -> Iterator[tuple[str, list[str]]]:
    """``$filter`` expressions ``field eq 'a' or field eq 'b' ...`` covering ``keys`` (duplicates
    dropped, order kept), each at most ``max_length`` characters once URL-encoded and at most
    ``max_keys`` keys; with the keys each one covers. A single key too long for ``max_length``
    gets a filter of its own."""
    if max_keys is not None and max_keys < 1:
        raise ValueError(f"max_keys must be at least 1, got {max_keys}")
    terms: list[str] = []
    covered: list[str] = []
    length = 0
    separator = len(quote(" or ", safe=""))
    for key in dict.fromkeys(keys):
        term = f"{field} eq {odata_string(key)}"
        size = len(quote(term, safe=""))
        added = size + (separator if terms else 0)
        if terms and (length + added > max_length or (max_keys is not None and len(terms) >= max_keys)):
            yield " or ".join(terms), covered
            terms, covered, length = [], [], 0
            added = size
        terms.append(term)
        covered.append(key)
        length += added
    if terms:
        yield " or ".join(terms), covered
