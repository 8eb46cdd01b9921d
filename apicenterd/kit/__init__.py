"""The connector kit: what every connector's HTTP client needs, written once.

* Paging with loop detection for every style vendors use: :func:`paginate_offset`,
  :func:`paginate_next_link`, :func:`paginate_page_number`, :func:`paginate_odata`,
  :func:`paginate_cursor` (each over a ``fetch`` coroutine returning a :class:`Page`).
* OAuth2: :class:`OAuth2Settings`, :func:`authorize_url`, :func:`exchange_code`,
  :class:`OAuth2RefreshAuth` (rotating refresh tokens).
* Rate-limit declarations: :class:`RateLimit`, :class:`RateLimitHeaders`.
* Batches: :func:`chunks`, :func:`odata_or_filters`, :func:`odata_string`.
* Errors: :func:`classify` / :func:`raise_for_response` turn a failed answer into the error
  class the runner acts on; :func:`vendor_message` reads the vendor's message.

Plugins import these from ``apicenterd.kit``; the submodules are not part of the API.
"""

from __future__ import annotations

from ..http import error_for_status, json_body, parse_retry_after
from ..plugin import RateLimit, RateLimitHeaders
from .batch import DEFAULT_MAX_FILTER_LENGTH, chunks, odata_or_filters, odata_string
from .errors import classify, not_found_by_path, raise_for_response, vendor_message
from .oauth import OAuth2RefreshAuth, OAuth2Settings, authorize_url, exchange_code
from .paging import (
    DEFAULT_MAX_PAGES,
    Page,
    PageGuard,
    each_item,
    link_header_next,
    odata_page,
    paginate_cursor,
    paginate_next_link,
    paginate_odata,
    paginate_offset,
    paginate_page_number,
)

__all__ = [
    # paging
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
    # OAuth2
    "OAuth2RefreshAuth",
    "OAuth2Settings",
    "authorize_url",
    "exchange_code",
    # rate limits
    "RateLimit",
    "RateLimitHeaders",
    # batches
    "DEFAULT_MAX_FILTER_LENGTH",
    "chunks",
    "odata_or_filters",
    "odata_string",
    # errors
    "classify",
    "error_for_status",
    "json_body",
    "not_found_by_path",
    "parse_retry_after",
    "raise_for_response",
    "vendor_message",
]
