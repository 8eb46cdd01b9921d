"""Rate-limit header declarations of the vendors whose connectors come next (Exact Online, Visma.net,
HubSpot), as their plugins will declare them: the core keeps no vendor presets. Used by the tests of
apicenterd.http's header handling and by bench/rate_limit.py."""

from apicenterd import RateLimitHeaders

__all__ = ["EXACT_DAILY", "EXACT_MINUTELY", "HUBSPOT", "HUBSPOT_SECONDLY", "VISMA_NET"]

EXACT_MINUTELY = RateLimitHeaders(
    remaining="X-RateLimit-Minutely-Remaining",
    reset="X-RateLimit-Minutely-Reset",
    reset_unit="epoch_ms",
    limit="X-RateLimit-Minutely-Limit",
)
EXACT_DAILY = RateLimitHeaders(
    remaining="X-RateLimit-Remaining", reset="X-RateLimit-Reset", reset_unit="epoch_ms", limit="X-RateLimit-Limit"
)
# Visma documents the reset "in seconds" without saying from when; a value that only makes
# sense as Unix time is read as one (see apicenterd.http).
VISMA_NET = RateLimitHeaders(
    remaining="X-RateLimit-Remaining", reset="X-RateLimit-Reset", reset_unit="seconds", limit="X-RateLimit-Limit"
)
HUBSPOT = RateLimitHeaders(
    remaining="X-HubSpot-RateLimit-Remaining",
    limit="X-HubSpot-RateLimit-Max",
    window_ms="X-HubSpot-RateLimit-Interval-Milliseconds",
)
HUBSPOT_SECONDLY = RateLimitHeaders(
    remaining="X-HubSpot-RateLimit-Secondly-Remaining", limit="X-HubSpot-RateLimit-Secondly"
)
