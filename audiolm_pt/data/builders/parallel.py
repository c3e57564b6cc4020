"""Worker processes for feature extraction, and an order-preserving map over them.

The map keeps a bounded number of tasks in flight and consumes its input on the calling
thread only (``Pool.imap`` would consume it on a helper thread), so a reader may count bad rows
into a report without locking. A ``ProcessPoolExecutor`` is used rather than
``multiprocessing.Pool`` because it raises ``BrokenProcessPool`` when a worker dies, where a
Pool would wait forever.
"""

import collections
import contextlib
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any

from audiolm_pt.data.parent_watch import exit_with_parent


@contextlib.contextmanager
def worker_pool(workers: int) -> Iterator[Executor | None]:
    """``workers`` spawned processes, or None (run inline) for ``workers`` <= 1.

    Spawned, not forked: the parent has TensorFlow and JAX threads running, and forking a
    multithreaded process can deadlock. Processes start on the first task, so an unused pool
    costs nothing; each exits when the building process is gone, however it died.
    """
    if workers <= 1:
        yield None
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=exit_with_parent) as pool:
        yield pool


def ordered_map(
    fn: Callable[[Any], Any],
    items: Iterable[tuple[Any, Any]],
    pool: Executor | None,
    max_in_flight: int = 16,
) -> Iterator[tuple[Any, Any]]:
    """Yields ``(tag, fn(job))`` for each ``(tag, job)`` in input order; inline if no pool."""
    if pool is None:
        for tag, job in items:
            yield tag, fn(job)
        return
    pending = collections.deque()
    for tag, job in items:
        pending.append((tag, pool.submit(fn, job)))
        if len(pending) >= max_in_flight:
            tag_done, future = pending.popleft()
            yield tag_done, future.result()
    while pending:
        tag_done, future = pending.popleft()
        yield tag_done, future.result()
