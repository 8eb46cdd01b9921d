"""The client's pure parts: error classification, Location ids, the token request."""

from __future__ import annotations

import httpx
import pytest
from apicenterd_visma_net.client import ClientCredentialsAuth, error_from, id_from_location

from apicenterd import AuthError, FatalError, RateLimited, RecordError, RetryableError

pytestmark = pytest.mark.anyio


def _response(status: int, body=None, headers=None, path="/v1/customer/10001") -> httpx.Response:
    request = httpx.Request("GET", f"https://api.finance.visma.net{path}")
    return httpx.Response(status, json=body, headers=headers, request=request)


def test_429_without_retry_after_waits_for_the_window_reset():
    error = error_from(_response(429, {"message": "Rate limit exceeded"}, {"X-RateLimit-Reset": "1200"}), "customers")
    assert isinstance(error, RateLimited) and error.retry_after == 1200


def test_visma_error_body_is_in_the_message_and_the_code_kept():
    body = {"ExceptionType": "IPPException", "ExceptionMessage": "Customer class 'X' not found", "ExceptionFaultCode": "12021",
            "ExceptionMessageID": "12021_abc", "ExceptionDetails": ""}  # fmt: skip
    error = error_from(_response(400, body, path="/v1/customer"), "customer a@b.c")
    assert isinstance(error, RecordError)
    assert "Customer class 'X' not found" in str(error) and "12021_abc" in str(error) and error.vendor_code == "12021"


@pytest.mark.parametrize(
    ("status", "path", "kind"),
    [(401, "/v1/customer", AuthError), (403, "/v1/customer", AuthError), (500, "/v1/customer", RetryableError),
     (404, "/v1/customer/10001", RecordError), (404, "/v1/customer", FatalError), (422, "/v1/inventory", RecordError)],
)  # fmt: skip
def test_status_classes(status, path, kind):
    assert isinstance(error_from(_response(status, {"message": "x"}, path=path), "w"), kind)


def test_location_gives_the_id_and_its_absence_is_an_error():
    assert id_from_location("https://api.finance.visma.net/v1/inventory/A%20B", "item") == "A B"
    with pytest.raises(FatalError, match="without a Location"):
        id_from_location(None, "item")


async def test_token_request_carries_tenant_and_scopes_and_a_refusal_names_the_tenant():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(dict(httpx.QueryParams(request.content.decode())))
        return httpx.Response(400, json={"error": "invalid_grant"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        auth = ClientCredentialsAuth(token_client=client, token_url="https://connect.visma.com/connect/token", client_id="c",
                                     client_secret="s", tenant_id="t-1", scopes=("vismanet_erp_service_api:read",))  # fmt: skip
        with pytest.raises(AuthError, match="t-1"):
            await auth._fresh()
    assert seen == [{"grant_type": "client_credentials", "client_id": "c", "client_secret": "s", "tenant_id": "t-1",
                     "scope": "vismanet_erp_service_api:read"}]  # fmt: skip
