"""Pagination with loop detection, for every paging style vendors use.

Each helper takes a ``fetch`` coroutine the connector writes (one request, its body turned
into a :class:`Page`), so the helpers know nothing of HTTP and are tested without it. They
yield the pages' items, page by page; :func:`each_item` flattens them.

A vendor whose paging goes round in circles (a next link or token already followed, a page
number that does not advance, a page that repeats the previous page's items) makes the
helper raise :class:`~apicenterd.FatalError` naming the endpoint and what repeated, instead
of reading forever; more than ``max_pages`` pages is the same error.

What a page says of the whole listing (``Page.total``, ``Page.total_pages``) feeds the run's
progress (:mod:`apicenterd.progress`): ``apicenterd runs`` and the dashboard then estimate the time left.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qs, urlsplit

from ..errors import FatalError
from ..progress import note_page

__all__ = [
    "DEFAULT_MAX_PAGES",
    "Page",
    "PageGuard",
    "each_item",
    "link_header_next",
    "odata_page",
    "paginate_cursor",
    "paginate_next_link",
    "paginate_odata",
    "paginate_offset",
    "paginate_page_number",
]

T = TypeVar("T")

DEFAULT_MAX_PAGES = 10_000
"""More pages than this in one listing is a paging loop the other checks did not see."""


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page as the vendor answered it.

    ``items``: the page's items. ``next``: the next link or cursor token (None: last page).
    ``total_pages``: the vendor's page count, ``number``: the page number it says this is
    (page-number paging). ``total``: the number of items in the whole listing (offset paging).
    ``more``: the vendor's own "there is more" flag, when it has one; it overrides guessing.
    """

    items: Sequence[T]
    next: str | None = None
    total_pages: int | None = None
    number: int | None = None
    total: int | None = None
    more: bool | None = None


class PageGuard:
    """The loop checks of one listing; the paginators use it, a hand-written loop can too.

    ``endpoint`` names the listing in errors (e.g. ``"GET /v2/articles"``); ``key`` gives an
    item's identity for the repeated-page check (default: the item itself).
    """

    def __init__(self, endpoint: str, *, max_pages: int = DEFAULT_MAX_PAGES, key: Callable[[Any], Hashable] | None = None):
        if max_pages < 1:
            raise ValueError(f"max_pages must be at least 1, got {max_pages}")
        self.endpoint = endpoint
        self.max_pages = max_pages
        self.pages = 0
        self._key = key
        self._followed: set[str] = set()
        self._previous: list[Any] | None = None
        self._previous_number: int | None = None

    def _loop(self, what: str) -> FatalError:
        return FatalError(f"{self.endpoint}: the paging loops: {what}; stopped rather than read forever")

    def page(self, items: Sequence[Any], *, number: int | None = None) -> None:
        """Count a page just read: too many pages, a page number that does not advance, or the
        same items as the page before (a non-empty page) are a loop."""
        self.pages += 1
        if self.pages > self.max_pages:
            raise FatalError(
                f"{self.endpoint}: more than {self.max_pages} pages; the paging loops, or the listing is larger "
                f"than the connector allows (max_pages)"
            )
        identity = [self._key(item) if self._key else item for item in items]
        if identity and identity == self._previous:
            raise self._loop(f"page {self.pages} repeats page {self.pages - 1} ({len(identity)} same items)")
        self._previous = identity
        if number is not None:
            if self._previous_number is not None and number <= self._previous_number:
                raise self._loop(f"page {self.pages} says it is page {number}, after page {self._previous_number}")
            self._previous_number = number

    def follow(self, link: str, *, what: str = "next link") -> None:
        """Note a next link / token / offset about to be followed; one already followed is a loop."""
        if link in self._followed:
            raise self._loop(f"{what} {link!r:.200} was already followed")
        self._followed.add(link)


async def each_item(pages: AsyncIterator[Sequence[T]]) -> AsyncGenerator[T, None]:
    """The items of ``pages`` one by one."""
    async for items in pages:
        for item in items:
            yield item


async def paginate_offset(
    fetch: Callable[[int, int], Awaitable[Page[T]]],
    *,
    endpoint: str,
    size: int,
    start: int = 0,
    max_pages: int = DEFAULT_MAX_PAGES,
    key: Callable[[T], Hashable] | None = None,
) -> AsyncIterator[Sequence[T]]:
    """Offset/size paging (``start``/``size``, ``offset``/``limit``, ``$skip``/``$top``):
    ``fetch(offset, size)`` for offsets ``start``, ``start + len(page)``, ... until a page is
    empty or short, ``Page.total`` is reached, or ``Page.more`` is False."""
    if size < 1:
        raise ValueError(f"{endpoint}: page size must be at least 1, got {size}")
    guard = PageGuard(endpoint, max_pages=max_pages, key=key)
    offset = start
    while True:
        page = await fetch(offset, size)
        guard.page(page.items)
        note_page(len(page.items), total=page.total, total_pages=page.total_pages, listing=endpoint)
        yield page.items
        offset += len(page.items)
        if page.more is not None:
            if not page.more or not page.items:
                return
        elif not page.items or len(page.items) < size or (page.total is not None and offset >= page.total):
            return


async def _follow_links(
    fetch: Callable[[str | None], Awaitable[Page[T]]],
    guard: PageGuard,
    what: str,
    token_of: Callable[[str], str] = lambda link: link,
) -> AsyncIterator[Sequence[T]]:
    link: str | None = None
    while True:
        page = await fetch(link)
        guard.page(page.items)
        note_page(len(page.items), total=page.total, total_pages=page.total_pages, listing=guard.endpoint)
        yield page.items
        if not page.next or page.more is False:
            return
        if not isinstance(page.next, str):
            raise FatalError(f"{guard.endpoint}: the {what} is not a string: {page.next!r:.80}")
        guard.follow(page.next, what=what)
        token = token_of(page.next)
        if token != page.next:
            guard.follow(token, what="$skiptoken")
        link = page.next


async def paginate_next_link(
    fetch: Callable[[str | None], Awaitable[Page[T]]],
    *,
    endpoint: str,
    max_pages: int = DEFAULT_MAX_PAGES,
    key: Callable[[T], Hashable] | None = None,
) -> AsyncIterator[Sequence[T]]:
    """Next-link paging (a URL in the body, e.g. CCV's ``next``, or in the ``Link`` header, see
    :func:`link_header_next`): ``fetch(None)`` for the first page, then ``fetch(page.next)``."""
    async for items in _follow_links(fetch, PageGuard(endpoint, max_pages=max_pages, key=key), "next link"):
        yield items


async def paginate_cursor(
    fetch: Callable[[str | None], Awaitable[Page[T]]],
    *,
    endpoint: str,
    max_pages: int = DEFAULT_MAX_PAGES,
    key: Callable[[T], Hashable] | None = None,
) -> AsyncIterator[Sequence[T]]:
    """Cursor-token paging (HubSpot's ``paging.next.after``): ``fetch(None)``, then
    ``fetch(page.next)`` with the token the last page gave, until it gives none."""
    async for items in _follow_links(fetch, PageGuard(endpoint, max_pages=max_pages, key=key), "cursor token"):
        yield items


def _skiptoken(link: str) -> str:
    values = parse_qs(urlsplit(link).query).get("$skiptoken")
    return values[0] if values else link


async def paginate_odata(
    fetch: Callable[[str | None], Awaitable[Page[T]]],
    *,
    endpoint: str,
    max_pages: int = DEFAULT_MAX_PAGES,
    key: Callable[[T], Hashable] | None = None,
) -> AsyncIterator[Sequence[T]]:
    """OData v2/v4 paging (``d.__next``, ``@odata.nextLink``): like :func:`paginate_next_link`,
    and a ``$skiptoken`` already used is a loop even when the rest of the link differs.
    ``fetch`` can build its :class:`Page` with :func:`odata_page`."""
    guard = PageGuard(endpoint, max_pages=max_pages, key=key)
    async for items in _follow_links(fetch, guard, "next link", _skiptoken):
        yield items


async def paginate_page_number(
    fetch: Callable[[int], Awaitable[Page[T]]],
    *,
    endpoint: str,
    first: int = 1,
    max_pages: int = DEFAULT_MAX_PAGES,
    key: Callable[[T], Hashable] | None = None,
) -> AsyncIterator[Sequence[T]]:
    """Page-number paging (``$page``/``$pagesize``, ``page``/``per_page``): ``fetch(first)``,
    ``fetch(first + 1)``, ... until the page is empty, the last of ``Page.total_pages``, or
    ``Page.more`` is False. A ``Page.number`` (the page the vendor says it sent) that does not
    advance is a loop."""
    guard = PageGuard(endpoint, max_pages=max_pages, key=key)
    number = first
    while True:
        page = await fetch(number)
        guard.page(page.items, number=page.number)
        note_page(len(page.items), total=page.total, total_pages=page.total_pages, listing=endpoint)
        yield page.items
        if not page.items or page.more is False:
            return
        if page.more is None and page.total_pages is not None and number - first + 1 >= page.total_pages:
            return
        number += 1


def link_header_next(headers: Mapping[str, str]) -> str | None:
    """The ``rel="next"`` URL of an RFC 8288 ``Link`` header (GitHub, Shopify style), or None."""
    value = headers.get("Link") or headers.get("link")
    if not value:
        return None
    for part in value.split(","):
        if ";" not in part:
            continue
        target, *params = part.split(";")
        for param in params:
            name, _, rel = param.strip().partition("=")
            if name.strip().lower() == "rel" and "next" in rel.strip().strip('"').lower().split():
                return target.strip().strip("<>").strip()
    return None


def odata_page(body: Any, *, endpoint: str) -> Page[Any]:
    """An OData list answer as a :class:`Page`: v2 ``{"d": {"results": [...], "__next": url}}``
    (or ``{"d": [...]}``), v4 ``{"value": [...], "@odata.nextLink": url}``; FatalError for
    anything else."""
    if isinstance(body, dict) and isinstance(body.get("d"), (dict, list)):
        d = body["d"]
        if isinstance(d, list):
            return Page(items=d)
        if isinstance(d.get("results"), list):
            return Page(items=d["results"], next=d.get("__next") or None)
    if isinstance(body, dict) and isinstance(body.get("value"), list):
        return Page(items=body["value"], next=body.get("@odata.nextLink") or body.get("odata.nextLink") or None)
    shape = sorted(body)[:8] if isinstance(body, dict) else type(body).__name__
    raise FatalError(f"{endpoint}: expected an OData list (d.results or value), got {shape}")
