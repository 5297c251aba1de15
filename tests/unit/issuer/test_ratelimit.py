"""The issuer's per-client token buckets, shared by forked workers."""

from __future__ import annotations

import multiprocessing

from issuer.ratelimit import RateLimiter, retry_after_header


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_up_to_the_limit_then_wait() -> None:
    clock = FakeClock()
    limiter = RateLimiter(["a", "b"], 3, clock=clock)
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.acquire("a")
    assert 19.9 < wait <= 20.0  # 3 per minute: one every 20 s
    assert limiter.acquire("b") == 0.0  # buckets are per client
    clock.now += 20.0
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0


def test_zero_means_no_limit() -> None:
    limiter = RateLimiter(["a"], 0)
    assert all(limiter.acquire("a") == 0.0 for _ in range(1000))


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert retry_after_header(0.01) == "1"
    assert retry_after_header(19.2) == "20"


def _take(limiter: RateLimiter, results: multiprocessing.queues.Queue[int]) -> None:
    results.put(sum(1 for _ in range(10) if limiter.acquire("a") == 0.0))


def test_forked_processes_share_one_bucket() -> None:
    limiter = RateLimiter(["a"], 10)
    context = multiprocessing.get_context("fork")
    results: multiprocessing.queues.Queue[int] = context.Queue()
    workers = [context.Process(target=_take, args=(limiter, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    allowed = results.get(timeout=5) + results.get(timeout=5)
    assert allowed == 10  # not 20: the workers draw from the same bucket


def test_a_client_first_seen_after_start_is_limited() -> None:
    clock = FakeClock()
    limiter = RateLimiter(["a"], 2, clock=clock)
    assert [limiter.acquire("late") for _ in range(2)] == [0.0, 0.0]
    assert limiter.acquire("late") > 0
    assert limiter.acquire("a") == 0.0  # its own bucket, not the late one's
    clock.now += 30.0
    assert limiter.acquire("late") == 0.0


def test_forked_processes_share_the_bucket_of_a_client_added_later() -> None:
    limiter = RateLimiter([], 10)  # nobody known when the memory was made
    context = multiprocessing.get_context("fork")
    results: multiprocessing.queues.Queue[int] = context.Queue()
    workers = [context.Process(target=_take_late, args=(limiter, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    allowed = results.get(timeout=5) + results.get(timeout=5)
    assert allowed == 10  # each worker found the slot the first one to ask made
    assert limiter.acquire("late") > 0  # and so does the parent


def _take_late(limiter: RateLimiter, results: multiprocessing.queues.Queue[int]) -> None:
    results.put(sum(1 for _ in range(10) if limiter.acquire("late") == 0.0))


def test_a_full_table_reuses_refilled_buckets() -> None:
    clock = FakeClock()
    limiter = RateLimiter([], 1, clock=clock, capacity=2)
    assert limiter.capacity == 2
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("b") == 0.0
    # both buckets are empty: no slot for a third client, which is let through meanwhile
    assert limiter.acquire("c") == 0.0
    assert limiter.acquire("c") == 0.0
    assert limiter.acquire("a") > 0  # the table still holds a and b
    assert limiter.acquire("b") > 0
    clock.now += 60.0  # a and b have refilled: a fresh bucket holds nothing more
    assert limiter.acquire("c") == 0.0
    assert limiter.acquire("c") > 0  # c has a slot of its own now
    assert limiter.acquire("a") == 0.0  # a kept its slot or took b's, refilled, slot
    assert limiter.acquire("a") > 0
    assert limiter.acquire("b") == 0.0  # every bucket is in use again: b is let through


def test_capacity_grows_with_the_clients_known_at_start() -> None:
    names = [f"c{i}" for i in range(3000)]
    limiter = RateLimiter(names, 1, clock=FakeClock())
    assert limiter.capacity >= 6000
    assert all(limiter.acquire(name) == 0.0 for name in names)
    assert all(limiter.acquire(name) > 0 for name in names)
