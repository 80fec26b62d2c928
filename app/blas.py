"""How many threads numpy's BLAS may use: one by default, set once when the service starts.

The search's matrix products are small (10,000 messages x 384 numbers against one question,
or 100 x 100 between hits). OpenBLAS splits even those across every core, and on a machine
whose cores are busy with the embedding model, the event loop and other processes, its threads
wait for each other: measured on 2 shared cores, one question against 30,000 vectors took 7.0 ms
with two BLAS threads and 1.6 ms with one, and the 100 x 100 near-duplicate check 16 ms against
0.06 ms (`bench/recall/speed.py` shows it end to end).
"""

from __future__ import annotations

from collections.abc import Callable

from threadpoolctl import threadpool_limits


def limit_blas_threads(threads: int) -> Callable[[], None]:
    """Cap BLAS at `threads` for the whole process (0: leave it alone); returns the undo."""
    if threads <= 0:
        return lambda: None
    limits = threadpool_limits(limits=threads, user_api="blas")
    return limits.restore_original_limits
