import time

import numpy as np
import pytest
from conftest import two_kinds
from test_training import FINETUNE

from aecluster import finetune, training
from aecluster.checkpoint import load_checkpoint
from aecluster.planner import MAX_EPOCHS, USE, BudgetClock, Plan, plan, recipe_plan
from aecluster.recipes import apply_overrides
from aecluster.runs import read_metrics
from aecluster.scan import SCAN
from aecluster.training import Validation, train


@pytest.fixture
def recipe(tiny_recipe):
    return apply_overrides(tiny_recipe, [*FINETUNE, "train.epochs=40", "finetune.epochs=10"])


def _fill(recipe):
    return apply_overrides(recipe, ["train.fill_budget=true"])


def test_without_a_budget_the_plan_is_the_recipe(recipe):
    assert plan(recipe, 0, 0.0, 3, 0.5) == recipe_plan(recipe) == Plan(40, 10)


@pytest.mark.parametrize("epoch_minutes", [0.001, 0.01, 0.05, 0.2, 1.0])
@pytest.mark.parametrize("budget", [1.0, 10.0, 30.0])
def test_a_filled_budget_is_used_but_not_overrun(recipe, budget, epoch_minutes):
    p = plan(_fill(recipe), budget, epoch_minutes, 1, epoch_minutes)
    spent = (p.epochs + p.finetune_epochs) * epoch_minutes
    assert spent <= USE * budget + 1e-9 or p == Plan(1, 0)  # one epoch done: no more
    if p.epochs < MAX_EPOCHS and spent > 2 * epoch_minutes:  # not capped, not degenerate
        assert spent >= USE * budget - 2.5 * epoch_minutes  # within an epoch and its share
    # the recipe's 10 per 40, or one fine-tuning epoch where that rounds to none
    assert p.finetune_epochs == p.epochs // 4 or (p.epochs < 4 and p.finetune_epochs <= 1)


def test_fine_tuning_is_planned_only_where_it_fits(recipe):
    # one epoch of 1.5 min done in a 3-min budget: another epoch of fine-tuning would overrun
    assert plan(recipe, 3.0, 1.5, 1, 1.5) == Plan(1, 0)
    assert plan(recipe, 10.0, 1.5, 1, 1.5) == Plan(4, 1)  # 6 min of the 9.3 planned


@pytest.mark.parametrize("after", [0.0, 0.5, 3.0, 12.0])
def test_what_follows_the_epochs_is_kept_out_of_their_share(recipe, after):
    p = plan(_fill(recipe), 10.0, 1.0, 10, 0.1, after_minutes=after)
    end = 1.0 + (p.epochs - 10 + p.finetune_epochs) * 0.1
    if after >= 10.0:
        assert p == Plan(10, 2)  # out of time already: stop after the epochs done
    else:
        assert end <= USE * (10.0 - after) + 1e-9
        assert end >= USE * (10.0 - after) - 0.25  # within an epoch and its share


def test_without_fill_the_recipe_length_is_the_most(recipe):
    assert plan(recipe, 30.0, 0.01, 1, 0.01) == Plan(40, 10)
    slow = plan(recipe, 30.0, 1.0, 1, 1.0)  # 50 epochs would take 50 minutes
    assert slow.epochs < 40 and (slow.epochs + slow.finetune_epochs) * 1.0 <= USE * 30


def test_a_slower_machine_costs_epochs_and_never_undoes_finished_ones(recipe):
    fast = plan(_fill(recipe), 10.0, 2.0, 20, 0.1)
    slow = plan(_fill(recipe), 10.0, 2.0, 20, 0.3)
    assert slow.epochs < fast.epochs
    assert plan(_fill(recipe), 10.0, 9.9, 20, 0.3).epochs == 20  # out of time: stop now


def test_a_plan_cut_by_a_slow_start_grows_back_and_a_fitting_one_is_kept(recipe):
    cut = plan(recipe, 30.0, 2.0, 2, 1.0)  # 1 min per epoch at first: the 40 + 10 do not fit
    assert cut.epochs < 40
    # the speed returns (0.1 min per epoch): the recipe's length fits again, so it comes back
    assert plan(recipe, 30.0, 3.0, 5, 0.1, cut) == Plan(40, 10)
    # a plan that fits and is as long as allowed is kept, however the speed wobbles
    assert plan(recipe, 30.0, 3.0, 5, 0.3, Plan(40, 10)) == Plan(40, 10)
    filled = plan(_fill(recipe), 30.0, 3.0, 5, 0.1)
    assert plan(_fill(recipe), 30.0, 3.1, 6, 0.098, filled) == filled  # noise: kept


def test_the_clock_counts_resumed_minutes_and_leaves_out_excluded_ones():
    clock = BudgetClock(time.monotonic() - 120, budget=10.0, prior=3.0, excluded=1.5)
    assert clock.minutes() == pytest.approx(3.5, abs=0.01)  # 3 before + 2 now - 1.5 scoring
    clock.plan_ends(after_minutes=2.0, before_finetune=0.5)
    assert clock.end == pytest.approx(USE * 8.0)  # USE of the 10 minutes less the 2 after
    assert clock.finetune_end == pytest.approx(clock.end + 0.5)
    assert not clock.past_end() and clock.fits(3.0) and not clock.fits(4.5)
    clock.prior = 7.0
    assert clock.past_end() and not clock.past_finetune_end() and not clock.fits(0.5)


@pytest.mark.parametrize("budget", [None, 0.0])
def test_without_a_budget_the_clock_never_ends_and_nothing_more_fits(budget):
    clock = BudgetClock(time.monotonic() - 600, budget=budget)
    clock.plan_ends(after_minutes=1.0, before_finetune=1.0)
    assert not clock.past_end() and not clock.past_finetune_end() and not clock.fits(0.0)


def test_training_with_a_filled_budget_uses_most_of_it(tmp_path, recipe):
    images, _ = two_kinds(256)
    budget = 0.25  # minutes
    short = apply_overrides(recipe, ["train.epochs=4", "finetune.epochs=1"])
    t0 = time.monotonic()
    summary = train(images, _fill(short), tmp_path / "m.pth", budget_minutes=budget,
                    progress=False)  # fmt: skip
    minutes = (time.monotonic() - t0) / 60
    assert 0.7 * budget <= minutes <= 1.05 * budget, minutes
    # more than the recipe's 4 (an epoch of 256 images takes 0.3 s on a fast 2-core CPU, 1 s
    # on a slow one)
    assert summary["epochs"] > 4
    assert summary["finetune_epochs_planned"] == max(1, summary["epochs"] // 4)
    assert read_metrics(tmp_path / "m.pth.run")[-1]["epoch"] == summary["epochs"]


def test_a_set_slow_to_embed_gets_fewer_epochs_and_keeps_its_budget(tmp_path, recipe, monkeypatch):
    images, _ = two_kinds(64)

    def slow_embed(model, rows, *args):  # 3 s for every 64 images, as a huge set would take
        time.sleep(3 * len(rows) / 64)
        return np.zeros((len(rows), model.latent_dim), dtype=np.float32)

    monkeypatch.setattr(training, "embed", slow_embed)
    # more epochs than any machine fits in the budget (100 fitted in 12 s on an AMX CPU)
    short = apply_overrides(recipe, ["train.epochs=2000", "finetune.epochs=0"])
    t0 = time.monotonic()
    summary = train(images, short, tmp_path / "m.pth", budget_minutes=0.2, progress=False,
                    clusters_after=True)  # fmt: skip
    assert summary["epochs"] < 2000 and summary["stopped_by_budget"]
    # the epochs ended early enough for the 3 s of embedding that follows in a 12 s budget
    # (timed here: the summary's minutes are rounded to 0.6 s)
    assert time.monotonic() - t0 + 3 <= 12


class _SlowPipeline:
    """Stands in for a clustering whose fit takes 0.5 s x (codes / 32)**2 (a kernel matrix)."""

    def __init__(self, codes, recipe):
        time.sleep(0.5 * (len(codes) / 32) ** 2)

    def predict(self, codes):
        time.sleep(0.001 * len(codes))


def test_the_clustering_cost_is_extrapolated_from_two_timings(tiny_recipe, monkeypatch):
    monkeypatch.setattr(training, "fit_cluster_pipeline", _SlowPipeline)
    codes = np.zeros((64, 8), dtype=np.float32)
    # 64 codes fit in 2 s, 32 in 0.5 s: p = 2, so 128 codes take 8 s
    assert 7.5 <= 60 * training.clustering_minutes(tiny_recipe, codes, 128) <= 8.5
    # of 200 codes, 100 are fitted (4.9 s) and 100 placed at 1 ms each
    sampled = apply_overrides(tiny_recipe, ["cluster.fit_sample=100"])
    assert 4.7 <= 60 * training.clustering_minutes(sampled, codes, 200) <= 5.4


def test_a_caller_that_clusters_after_training_keeps_time_for_it(tmp_path, recipe, monkeypatch):
    images, _ = two_kinds(64)
    monkeypatch.setattr(training, "fit_cluster_pipeline", _SlowPipeline)
    short = apply_overrides(recipe, ["train.epochs=2000", "finetune.epochs=0"])
    t0 = time.monotonic()
    summary = train(images, short, tmp_path / "m.pth", budget_minutes=0.2, progress=False,
                    clusters_after=True)  # fmt: skip
    assert summary["epochs"] < 2000 and summary["stopped_by_budget"]
    # the epochs ended early enough for the 2 s of clustering that follows in a 12 s budget
    assert time.monotonic() - t0 + 2 <= 12


def test_fine_tuning_keeps_time_for_the_clustering_it_starts_with(tmp_path, recipe, monkeypatch):
    images, _ = two_kinds(64)
    monkeypatch.setattr(training, "fit_cluster_pipeline", _SlowPipeline)  # estimated: 2 s
    fit = SCAN.fit

    def slow_fit(self, X, y=None):  # and fine-tuning's own clustering takes 2 s too
        time.sleep(2)
        return fit(self, X, y)

    monkeypatch.setattr(SCAN, "fit", slow_fit)
    # with a contrastive loss an epoch and a fine-tuning epoch cost alike: two encoder passes
    both = apply_overrides(_fill(recipe), ["loss.contrastive=1.0"])
    t0 = time.monotonic()
    summary = train(images, both, tmp_path / "m.pth", budget_minutes=0.2, progress=False)
    # the epochs left the 2 s of clustering out of their share, so fine-tuning ran to its end
    assert summary["finetune_epochs"] >= summary["finetune_epochs_planned"] >= 1
    assert time.monotonic() - t0 <= 12


def test_time_left_by_an_overestimate_goes_to_more_fine_tuning(tmp_path, recipe, monkeypatch):
    images, _ = two_kinds(64)
    # what precedes fine-tuning is estimated at 4 s of the 12 and takes well under 1 s
    monkeypatch.setattr(training, "clustering_minutes", lambda *args, **kw: 4 / 60)
    both = apply_overrides(_fill(recipe), ["loss.contrastive=1.0"])
    t0 = time.monotonic()
    summary = train(images, both, tmp_path / "m.pth", budget_minutes=0.2, progress=False)
    assert summary["finetune_epochs"] > summary["finetune_epochs_planned"] >= 1
    assert time.monotonic() - t0 <= 12
    # the checkpoint's recipe says how many ran, so training again without a budget repeats it
    recorded = load_checkpoint(tmp_path / "m.pth")["recipe"]["finetune"]["epochs"]
    assert recorded == summary["finetune_epochs"]


def test_without_fill_fine_tuning_keeps_the_recipes_length(tmp_path, recipe, monkeypatch):
    images, _ = two_kinds(64)
    monkeypatch.setattr(training, "clustering_minutes", lambda *args, **kw: 4 / 60)
    short = apply_overrides(recipe, ["loss.contrastive=1.0", "train.epochs=4",
                                     "finetune.epochs=1"])  # fmt: skip
    summary = train(images, short, tmp_path / "m.pth", budget_minutes=0.2, progress=False)
    assert summary["epochs"] == 4 and summary["finetune_epochs"] == 1


def test_val_scoring_is_left_out_of_the_budget(tmp_path, recipe, monkeypatch):
    images, y = two_kinds(64)

    def slow_scores(*args):  # reporting that takes longer than the whole budget allows
        time.sleep(3)
        return {"val_accuracy": 0.5}

    monkeypatch.setattr(training, "validation_scores", slow_scores)
    short = apply_overrides(recipe, ["train.epochs=3", "train.checkpoint_every=1",
                                     "finetune.epochs=0"])  # fmt: skip
    summary = train(images, short, tmp_path / "m.pth", budget_minutes=0.08, progress=False,
                    val=Validation(images[:20], y[:20]))  # fmt: skip
    # counted, the 3 s after epoch 2 would leave no time for epoch 3 in 0.93 * 4.8 s
    assert summary["epochs"] == 3 and not summary["stopped_by_budget"]
    rows = read_metrics(tmp_path / "m.pth.run")
    assert [r["val_accuracy"] for r in rows] == [0.5] * 3
    assert summary["train_minutes"] * 60 < 3


def test_an_epoch_longer_than_the_budget_ends_where_the_budget_does(tmp_path, recipe, monkeypatch):
    images, _ = two_kinds(64)

    def slow_check(*args):  # every batch takes 50 ms: an epoch of 32 batches takes 1.6 s
        time.sleep(0.05)

    monkeypatch.setattr(training, "check_finite", slow_check)
    long = apply_overrides(recipe, ["train.batch_size=2", "train.epochs=3"])
    budget = 0.01  # minutes: 0.6 s
    t0 = time.monotonic()
    summary = train(images, long, tmp_path / "m.pth", budget_minutes=budget, progress=False)
    assert summary["epochs"] == 1 and summary["finetune_epochs"] == 0
    assert summary["stopped_by_budget"]
    assert summary["train_minutes"] <= budget
    assert time.monotonic() - t0 < 3  # not the 3 epochs of 1.6 s
    assert read_metrics(tmp_path / "m.pth.run")[-1]["epoch"] == 1


def test_fine_tuning_ends_where_the_budget_does(tmp_path, recipe, monkeypatch):
    images, _ = two_kinds(64)
    # a fine-tuning batch of 0.2 s, far slower than an epoch of the autoencoder: the plan's
    # estimate of a fine-tuning epoch (one autoencoder epoch) is short
    monkeypatch.setattr(finetune, "check_finite", lambda *args: time.sleep(0.2))
    slow = apply_overrides(recipe, ["train.epochs=2", "finetune.epochs=10", "train.batch_size=8"])
    t0 = time.monotonic()
    summary = train(images, slow, tmp_path / "m.pth", budget_minutes=0.05, progress=False)
    assert summary["epochs"] == 2 and summary["finetune_epochs_planned"] >= 1
    assert summary["finetune_epochs"] < summary["finetune_epochs_planned"]  # cut
    assert summary["stopped_by_budget"]
    assert time.monotonic() - t0 <= 0.05 * 60 + 0.5  # not 10 epochs of 8 batches of 0.2 s
