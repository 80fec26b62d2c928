"""How a model's context window is shared out: pure arithmetic, no tokenising.

    split = BudgetSplit(persona=0.20, memories=0.25, recent=0.35, response=0.20)
    plan = plan_budget(8192, None, split)      # reserve 1638 for the reply, 6554 for the prompt
    plan = plan_budget(8192, 500, split)       # the client's max_tokens: reserve 500, prompt 7692
    memory_cap, recent_cap = split_remaining(plan, persona_tokens=900)

Shares are fractions of the whole context. The reply reserve is the client's `max_tokens` when
it sent one (never more than half the context, or the response share if that is larger, so a
huge `max_tokens` cannot starve the prompt), else the response share. The prompt gets the rest.

The persona, memory and recent-turn shares are limits that flow: the persona is always kept
whole, and what it leaves (or borrows) is split between memories and recent turns in the ratio
of their shares (`split_remaining`). The context builder then lets either of those two take
what the other leaves unused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class BudgetSplit:
    """Fractions of the context for each part; each within 0..1, together at most 1."""

    persona: float = 0.20
    memories: float = 0.25
    recent: float = 0.35
    response: float = 0.20

    def __post_init__(self) -> None:
        shares = asdict(self)
        for name, share in shares.items():
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"budget share {name}={share} must be within 0..1")
        if sum(shares.values()) > 1.0 + 1e-9:
            raise ValueError(f"budget shares sum to {sum(shares.values()):.3f}; they must sum to at most 1")


@dataclass(frozen=True)
class BudgetPlan:
    """Token limits for one request; `prompt_budget` is the hard ceiling for the prompt."""

    total: int
    response_reserve: int
    prompt_budget: int
    persona_limit: int
    memories_limit: int
    recent_limit: int

    def limits(self) -> dict[str, int]:
        """The plan as a flat dict, for budget reports and logs."""
        return asdict(self)


def plan_budget(context_tokens: int, max_tokens: int | None, split: BudgetSplit) -> BudgetPlan:
    """Split `context_tokens` into a reply reserve, a prompt budget and per-part limits."""
    if context_tokens < 1:
        raise ValueError(f"context_tokens must be positive, got {context_tokens}")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    reserve = response_reserve(context_tokens, max_tokens, split.response)
    return BudgetPlan(
        total=context_tokens,
        response_reserve=reserve,
        prompt_budget=context_tokens - reserve,
        persona_limit=int(context_tokens * split.persona),
        memories_limit=int(context_tokens * split.memories),
        recent_limit=int(context_tokens * split.recent),
    )


def response_reserve(context_tokens: int, max_tokens: int | None, response_share: float) -> int:
    """Tokens kept free for the reply: `max_tokens` within a cap, else the response share."""
    share = int(context_tokens * response_share)
    if max_tokens is None:
        return share
    return min(max_tokens, max(share, context_tokens // 2))


def split_remaining(plan: BudgetPlan, persona_tokens: int) -> tuple[int, int]:
    """(memory cap, recent cap): what the persona leaves of the prompt, in the ratio of their limits.

    `persona_tokens` is everything the prompt spends before memories and recent turns (the
    persona message and the reply priming). The two caps always add up to what is left.
    """
    left = max(0, plan.prompt_budget - persona_tokens)
    wanted = plan.memories_limit + plan.recent_limit
    if wanted == 0:
        return 0, left
    memory_cap = left * plan.memories_limit // wanted
    return memory_cap, left - memory_cap
