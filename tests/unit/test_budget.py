"""Budget arithmetic: shares, the reply reserve and how the persona's leftovers flow."""

from __future__ import annotations

import pytest

from app.budget import BudgetPlan, BudgetSplit, plan_budget, response_reserve, split_remaining

DEFAULT = BudgetSplit()


@pytest.mark.parametrize("shares", [
    dict(persona=-0.1),
    dict(memories=1.5),
    dict(persona=0.5, memories=0.5, recent=0.1, response=0.0),
    dict(persona=0.3, memories=0.3, recent=0.3, response=0.3),
])
def test_split_rejects_bad_shares(shares):
    with pytest.raises(ValueError):
        BudgetSplit(**shares)


@pytest.mark.parametrize("shares", [
    dict(),
    dict(persona=0, memories=0, recent=0, response=0),
    dict(persona=0.1, memories=0.2, recent=0.3, response=0.4),
    dict(persona=1.0, memories=0, recent=0, response=0),
])
def test_split_accepts_shares_summing_to_at_most_one(shares):
    assert BudgetSplit(**shares)


@pytest.mark.parametrize("total, max_tokens, split, expected", [
    # no max_tokens: the response share
    (8192, None, DEFAULT, BudgetPlan(8192, 1638, 6554, 1638, 2048, 2867)),
    (1000, None, DEFAULT, BudgetPlan(1000, 200, 800, 200, 250, 350)),
    # max_tokens smaller than the share: only what the client asked for
    (8192, 500, DEFAULT, BudgetPlan(8192, 500, 7692, 1638, 2048, 2867)),
    # max_tokens larger than the share: up to half the context
    (8192, 3000, DEFAULT, BudgetPlan(8192, 3000, 5192, 1638, 2048, 2867)),
    (8192, 100_000, DEFAULT, BudgetPlan(8192, 4096, 4096, 1638, 2048, 2867)),
    # a response share above one half is its own cap
    (1000, 100_000, BudgetSplit(0.1, 0.1, 0.1, 0.7), BudgetPlan(1000, 700, 300, 100, 100, 100)),
    (1000, None, BudgetSplit(0.5, 0.25, 0.25, 0.0), BudgetPlan(1000, 0, 1000, 500, 250, 250)),
    (131072, None, DEFAULT, BudgetPlan(131072, 26214, 104858, 26214, 32768, 45875)),
])
def test_plan_budget(total, max_tokens, split, expected):
    plan = plan_budget(total, max_tokens, split)
    assert plan == expected
    assert plan.prompt_budget + plan.response_reserve == plan.total


@pytest.mark.parametrize("total, max_tokens", [(0, None), (-5, None), (8192, 0)])
def test_plan_budget_rejects_nonsense(total, max_tokens):
    with pytest.raises(ValueError):
        plan_budget(total, max_tokens, DEFAULT)


@pytest.mark.parametrize("total, max_tokens, share, expected", [
    (1000, None, 0.2, 200),
    (1000, 1, 0.2, 1),
    (1000, 499, 0.2, 499),
    (1000, 501, 0.2, 500),
    (1000, 900, 0.8, 800),
    (1000, None, 0.0, 0),
])
def test_response_reserve(total, max_tokens, share, expected):
    assert response_reserve(total, max_tokens, share) == expected


@pytest.mark.parametrize("plan, persona_tokens, expected", [
    # a small persona leaves its share to memories and recent turns, 25:35
    (BudgetPlan(1000, 200, 800, 200, 250, 350), 100, (291, 409)),
    # a persona over its share borrows from both in the same ratio
    (BudgetPlan(1000, 200, 800, 200, 250, 350), 500, (125, 175)),
    # a persona over the whole prompt leaves nothing
    (BudgetPlan(1000, 200, 800, 200, 250, 350), 900, (0, 0)),
    # no memory share: everything to recent turns
    (BudgetPlan(1000, 0, 1000, 500, 0, 500), 10, (0, 990)),
    # no shares for either: recent turns still get what is left
    (BudgetPlan(1000, 0, 1000, 1000, 0, 0), 10, (0, 990)),
])
def test_split_remaining(plan, persona_tokens, expected):
    caps = split_remaining(plan, persona_tokens)
    assert caps == expected
    assert sum(caps) == max(0, plan.prompt_budget - persona_tokens)


def test_limits_report_the_whole_plan():
    plan = plan_budget(8192, None, DEFAULT)
    assert plan.limits() == {"total": 8192, "response_reserve": 1638, "prompt_budget": 6554,
                             "persona_limit": 1638, "memories_limit": 2048, "recent_limit": 2867}
