"""The course's one budget switch, read from the environment variable COURSE_BUDGET.

``full`` (the default) trains long enough to learn from; ``fast`` trains for real but smaller,
so CI can run every lesson in minutes. Every lesson asks here, and nowhere else.
"""

import os

BUDGETS = ("fast", "full")


def budget() -> str:
    """Return the current budget, 'fast' or 'full' (COURSE_BUDGET, default 'full')."""
    value = os.environ.get("COURSE_BUDGET", "full").strip().lower() or "full"
    if value not in BUDGETS:
        raise ValueError(
            f"unknown COURSE_BUDGET {value!r}; choose one of: {', '.join(BUDGETS)} "
            "(or leave it unset for 'full'), e.g. COURSE_BUDGET=fast."
        )
    return value


def by_budget(fast, full):
    """Return ``fast`` under the fast budget and ``full`` under the full budget."""
    return fast if budget() == "fast" else full
