"""The one retry policy the remote engines, the browser and the search backends share."""

from __future__ import annotations

import email.utils
import time

from agent.http_retry import RetryPolicy, retry_after_seconds

POLICY = RetryPolicy(retries=3, backoff=0.5, max_wait=10.0)


def test_transient_failures_back_off_exponentially_up_to_the_cap() -> None:
    assert [POLICY.delay(n, 503) for n in range(3)] == [0.5, 1.0, 2.0]
    assert POLICY.delay(0) == 0.5  # a refused connection is transient too
    assert RetryPolicy(retries=9, backoff=4.0, max_wait=10.0).delay(5, 502) == 10.0


def test_attempts_are_bounded() -> None:
    assert POLICY.delay(2, 429) is not None
    assert POLICY.delay(3, 429) is None
    assert RetryPolicy(retries=0).delay(0, 503) is None


def test_only_transient_statuses_are_retried() -> None:
    for status in (400, 401, 403, 404, 422, 501):
        assert POLICY.delay(0, status) is None, status
    for status in (408, 409, 429, 500, 502, 503, 504):
        assert POLICY.delay(0, status) == 0.5, status


def test_retry_after_seconds_and_dates_are_honoured_within_the_cap() -> None:
    assert POLICY.delay(0, 429, {"retry-after": "3"}) == 3.0
    assert POLICY.delay(0, 429, {"Retry-After": "0"}) == 0.0
    soon = email.utils.formatdate(time.time() + 5, usegmt=True)
    assert 3.0 < POLICY.delay(0, 503, {"retry-after": soon}) <= 5.0
    assert POLICY.delay(0, 503, {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0


def test_a_server_asking_for_longer_than_the_cap_is_not_waited_for() -> None:
    assert POLICY.delay(0, 429, {"retry-after": "3600"}) is None
    later = email.utils.formatdate(time.time() + 3600, usegmt=True)
    assert POLICY.delay(0, 503, {"retry-after": later}) is None


def test_an_unreadable_retry_after_falls_back_to_backoff() -> None:
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert POLICY.delay(1, 503, {"retry-after": "soon"}) == 1.0
