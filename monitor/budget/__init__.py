"""The spend budget (issue #18): a daily (Pacific-day) and monthly USD budget per project, from the cost metric.

Pure parts (`periods`, `state`, `notices`, `config`) apart from I/O (`spend`: PromQL, Redis, this sidecar's
counter; `job`: the daemon's scheduled check).
"""

from monitor.budget.config import BudgetConfig, budget_config_from_mapping, budget_consistency
from monitor.budget.periods import Period, period
from monitor.budget.state import BudgetState, Limits, Notice, Status

__all__ = [
    "BudgetConfig",
    "BudgetState",
    "Limits",
    "Notice",
    "Period",
    "Status",
    "budget_config_from_mapping",
    "budget_consistency",
    "period",
]
