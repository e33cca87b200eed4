"""The time budget planner: how many autoencoder and fine-tuning epochs fit in the minutes left.

Re-planned after every epoch from the measured speed, so a machine that slows down costs epochs,
not the result: the learning-rate schedule always follows the planned length, and fine-tuning
keeps its share of it. With `train.fill_budget` the plan may run longer than `train.epochs` (a
small set gets many epochs out of a 10-minute budget); without it `train.epochs` is the most.
An epoch that would outlast the budget is ended where the budget ends (`training`). What follows
the last epoch and grows with the number of images (embedding every image, for SCAN and for the
final clustering, and the clustering itself: SCAN's heads before fine-tuning, or the caller's) is
measured on a sample before the first epoch and kept out of the epochs' share: on a large set it
may need more than the budget's last 7%. With `train.fill_budget`, the time that estimate or the
whole-epoch rounding of fine-tuning leaves goes to more fine-tuning epochs, each started only
where the measured length of one still fits (`training`).
A plan depends on timing, so it is printed and recorded in the checkpoint: training again with
`--set train.epochs=E --set finetune.epochs=F` and no budget reproduces a run exactly.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

# the share planned for epochs of what the budget leaves after what follows the last epoch (the
# final embedding and clustering, measured before the first epoch); the rest covers epochs
# slower than the ones measured
USE = 0.93
MAX_EPOCHS = 2000
KEEP = 0.95  # a filling plan is kept while it is projected to use at least this share of USE


@dataclass(frozen=True)
class Plan:
    epochs: int
    finetune_epochs: int

    def describe(self, epoch_minutes: float) -> str:
        tail = f" + {self.finetune_epochs} fine-tuning epochs" if self.finetune_epochs else ""
        return f"{self.epochs} epochs{tail} ({epoch_minutes * 60:.1f} s per epoch measured)"


def epochs_end(budget_minutes: float, after_minutes: float) -> float:
    """The minute by which the epochs (fine-tuning included) must end: USE of what the budget
    leaves after what follows them, so the margin for a misjudged speed stays however long
    that is."""
    return USE * max(0.0, budget_minutes - after_minutes)


def recipe_plan(recipe: dict) -> Plan:
    """The recipe's own lengths: the plan without a budget."""
    return Plan(recipe["train"]["epochs"], recipe["finetune"]["epochs"])


def plan(
    recipe: dict,
    budget_minutes: float,
    minutes_used: float,
    epochs_done: int,
    epoch_minutes: float,
    current: Plan | None = None,
    after_minutes: float = 0.0,
) -> Plan:
    """The epochs (total, counting those done) and fine-tuning epochs that fit in the budget.

    `epoch_minutes` is the expected cost of one more epoch, and of a fine-tuning epoch (both
    encode two views of every image and decode `loss.reconstruct_share` of them; fine-tuning
    also stops where the budget ends). Fine-tuning keeps the recipe's ratio to the autoencoder
    epochs, and is planned only as far as it fits: with no time left there is none.
    `after_minutes` is the measured cost of what follows the epochs; the epochs and fine-tuning
    end by USE of what the budget leaves after it. At least the
    epochs done are planned, and at least one. The `current`
    plan is kept while it still fits and either is as long as allowed or still uses most of the
    budget, so that small changes in speed do not reshape the learning-rate schedule epoch after
    epoch, while a plan cut by a slow start or a busy stretch grows back when the speed returns.
    """
    base = recipe_plan(recipe)
    if not budget_minutes or epoch_minutes <= 0:
        return base
    limit = MAX_EPOCHS if recipe["train"]["fill_budget"] else base.epochs
    end = epochs_end(budget_minutes, after_minutes)
    if current is not None and current.epochs >= epochs_done:
        left = current.epochs - epochs_done + current.finetune_epochs
        projected = minutes_used + left * epoch_minutes
        # a plan cut short by a slow stretch grows back once it would leave much of the budget
        enough = current.epochs >= limit or projected >= KEEP * end
        if projected <= end and enough:
            return current
    ratio = base.finetune_epochs / base.epochs
    left = end - minutes_used
    # r more epochs cost r * m, and fine-tuning ratio * (done + r) * m
    more = math.floor((left / epoch_minutes - ratio * epochs_done) / (1 + ratio))
    epochs = max(epochs_done + more, epochs_done, 1)
    epochs = min(epochs, max(limit, epochs_done))
    finetune = math.floor(ratio * epochs + 1e-9)
    if base.finetune_epochs and not finetune:  # one fine-tuning epoch, if it fits
        finetune = int(left >= (epochs - epochs_done + 1) * epoch_minutes)
    return Plan(epochs, finetune)


@dataclass
class BudgetClock:
    """A run's training minutes against its budget (none: `budget` 0 or None).

    The minutes count from `started` (`time.monotonic()`), plus a resumed run's `prior` minutes,
    less the `excluded` ones (scoring labelled images is reporting, not training). `plan_ends`
    sets when the epochs and fine-tuning must end, from the measured cost of what follows them.
    """

    started: float
    budget: float | None = None
    prior: float = 0.0
    excluded: float = 0.0
    end: float = 0.0
    finetune_end: float = 0.0

    def minutes(self) -> float:
        return self.prior + (time.monotonic() - self.started) / 60 - self.excluded

    def plan_ends(self, after_minutes: float, before_finetune: float) -> None:
        """The epochs (fine-tuning planned in) end by `epochs_end`; fine-tuning's epochs start
        after their share of what follows, `before_finetune` minutes, so they end that much
        later."""
        self.end = epochs_end(self.budget, after_minutes) if self.budget else 0.0
        self.finetune_end = self.end + before_finetune

    def past_end(self) -> bool:
        return bool(self.budget) and self.minutes() >= self.end

    def past_finetune_end(self) -> bool:
        return bool(self.budget) and self.minutes() >= self.finetune_end

    def fits(self, minutes: float) -> bool:
        """Whether `minutes` more still end by fine-tuning's end."""
        return bool(self.budget) and self.minutes() + minutes <= self.finetune_end
