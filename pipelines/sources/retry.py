"""Bounded retries for the API sources.

Both clients retry on their own, with defaults that can hang a sync for many
minutes: wandb-core retries GraphQL 20 times with waits of up to 60 s, and
axiom-py's urllib3 policy waits 0/4/8 s on 5xx but never retries 429. The
helpers here replace those defaults with bounds that the source's
constructor arguments control.
"""

from __future__ import annotations

import math
import re
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

# Statuses worth another attempt: rate limiting and server-side failures.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class BoundedRetry(Retry):
    """urllib3's Retry, except that a server's Retry-After is capped at `max_retry_after_s`.

    urllib3 honours Retry-After (on 413/429/503) without an upper limit, so a
    server answering "Retry-After: 3600" would stall a sync for an hour.
    """

    max_retry_after_s: float = 60.0

    def new(self, **kw: Any) -> BoundedRetry:
        retry = super().new(**kw)
        retry.max_retry_after_s = self.max_retry_after_s
        return retry

    def parse_retry_after(self, retry_after: str) -> float:
        # RFC 9110 says whole seconds or an HTTP date; accept "1.5" too rather than fail the sync.
        if re.fullmatch(r"\s*\d+\.\d*\s*", retry_after):
            return float(retry_after)
        return super().parse_retry_after(retry_after)

    def get_retry_after(self, response: Any) -> float | None:
        try:
            seconds = super().get_retry_after(response)
        except InvalidHeader:
            return None  # an unreadable Retry-After: fall back to the exponential backoff
        return None if seconds is None else min(seconds, self.max_retry_after_s)


def bounded_retry(retries: int, backoff_s: float, max_backoff_s: float) -> BoundedRetry:
    """Retry 429 and 5xx (any method: our POSTs are read-only queries) and dropped connections.

    Waits are `backoff_s * 2**(n-1)` capped at `max_backoff_s` (urllib3 retries
    the first failure immediately), or the server's Retry-After, capped the
    same way. Once the bound is reached the last response is returned rather
    than raised, so the client's own error handling names its status.
    """
    retry = BoundedRetry(
        total=retries,
        backoff_factor=backoff_s,
        backoff_max=max_backoff_s,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=None,
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    retry.max_retry_after_s = max_backoff_s
    return retry


class TimeoutHTTPAdapter(HTTPAdapter):
    """An HTTPAdapter that applies a default timeout: requests has none, so a silent server would hang forever."""

    def __init__(self, *args: Any, timeout_s: float, **kwargs: Any) -> None:
        self.timeout_s = timeout_s
        super().__init__(*args, **kwargs)

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout_s
        return super().send(request, *args, **kwargs)


def wandb_core_retry_env(retries: int, timeout_s: float, max_wait_s: float = 10.0) -> dict[str, str]:
    """The wandb-core retry knobs for `retries` retries and `timeout_s` per HTTP request.

    wandb-core reads these as whole seconds (`time.Second * time.Duration(x)`
    in its Go settings), so fractions are rounded up: 0.1 would become 0,
    which wandb-core treats as unset and replaces by its 2-60 s defaults.
    GraphQL and file transfers (parquet history downloads) are bounded alike.
    """
    wait_max = max(1, math.ceil(max_wait_s))
    return {
        "WANDB__GRAPHQL_RETRY_MAX": str(max(0, int(retries))),
        "WANDB__GRAPHQL_RETRY_WAIT_MIN_SECONDS": "1",
        "WANDB__GRAPHQL_RETRY_WAIT_MAX_SECONDS": str(wait_max),
        "WANDB_HTTP_TIMEOUT": str(max(1, math.ceil(timeout_s))),
        "WANDB__FILE_TRANSFER_RETRY_MAX": str(max(0, int(retries))),
        "WANDB__FILE_TRANSFER_RETRY_WAIT_MIN_SECONDS": "1",
        "WANDB__FILE_TRANSFER_RETRY_WAIT_MAX_SECONDS": str(wait_max),
    }
