"""How much RAM the per-conversation caches may hold, and which conversations leave first (pure).

The search index and working memory of every active conversation live in RAM, rebuilt from its
database on first use. Idle ones leave after SESSION_IDLE_SECONDS; a burst of large
conversations could still fill RAM before then, so MEMORY_RAM_MB also bounds them: past it, the
least recently used leave first (the newest always stays). Leaving is only a cache drop; the
next request on that conversation loads it again.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Mapping, Sequence


def over_budget(order: Sequence[str], sizes: Mapping[str, int], budget: int) -> list[str]:
    """The conversations to drop, oldest first, so the rest fit `budget` bytes.

        >>> over_budget(["a", "b", "c"], {"a": 5, "b": 5, "c": 5}, 11)
        ['a']
        >>> over_budget(["a", "b"], {"x": 9, "a": 1, "b": 30}, 10)
        ['x', 'a']

    `order` is least recently used first; sizes of conversations not in it count as older still.
    """
    recent = set(order)
    ranked = [key for key in sizes if key not in recent] + [key for key in order if key in sizes]
    total = sum(sizes.values())
    dropped = []
    for key in ranked[:-1]:
        if total <= budget:
            break
        dropped.append(key)
        total -= sizes[key]
    return dropped


def give_back() -> None:
    """Return freed heap pages to the OS (glibc's malloc_trim), so dropped caches leave RSS too.

    Without it, memory a dropped cache freed stays in the allocator for reuse: not a leak, but
    it shows as RSS that never comes down. A no-op where the C library has no malloc_trim.
    """
    name = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    if trim is not None:
        trim(0)
