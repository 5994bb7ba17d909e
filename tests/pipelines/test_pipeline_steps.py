"""Run context, step helpers (dispatch dry run and enrolment) and the numbers behind the figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from winback_ml.exceptions import DataContractError, PipelineError
from winback_ml.pipelines import make_run_context
from winback_ml.pipelines.plots import (
    expected_spend,
    profit_budget_curve,
    return_curves_by_reason,
)
from winback_ml.pipelines.steps import run_dispatch, survival_candidates


@pytest.fixture(scope="module")
def world():
    from winback_ml.data.synthetic import make_world

    return make_world(600, 3)


@pytest.fixture(scope="module")
def world_folder(world, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("w") / "tables"
    world.write(out)
    return out


def _targets(ctx, n: int = 12) -> pd.DataFrame:
    """Contract targets for n customers lapsed at as_of (contact all, a 20 % x 3 months discount)."""
    s = ctx.data.subscriptions
    ids = s.loc[s["ended_at"].notna(), "customer_id"].drop_duplicates().head(n).tolist()
    return pd.DataFrame(
        {
            "customer_id": ids,
            "segment": "warm",
            "cancel_reason": "too_expensive",
            "reason_source": "stated",
            "days_lapsed": 30,
            "p_return_base": 0.05,
            "p_return_offer": 0.15,
            "expected_ltv": 100.0,
            "contact": True,
            "offer_type": "discount",
            "discount_pct": 20.0,
            "discount_months": 3,
            "channel": "email",
            "expected_incremental_profit": 5.0,
            "rank": range(1, len(ids) + 1),
            "model_version": "test",
        }
    )


def test_context_resolves_parameters_and_refuses_pii(world_folder: Path, tmp_path: Path) -> None:
    ctx = make_run_context(str(world_folder), "", str(tmp_path / "out"), "r1", "", notebook="t")
    last = ctx.data.events["occurred_at"].max()
    assert ctx.as_of == last.normalize() + pd.Timedelta(days=1)
    assert ctx.data.as_of == ctx.as_of and ctx.config.attribution_window_days == 30
    p = ctx.save_table(pd.DataFrame({"customer_id": ["a"], "x": [1]}), "tables/ok")
    assert p == tmp_path / "out" / "tables" / "ok.csv" and p.exists()
    with pytest.raises(DataContractError, match=r"PII columns \['email'\]"):
        ctx.save_table(ctx.data.customers[["customer_id", "email"]], "leak")
    assert not (tmp_path / "out" / "leak.csv").exists()
    for outside in ("../escaped", str(tmp_path / "abs"), "tables/../../escaped2"):
        with pytest.raises(PipelineError, match="outside the run folder"):
            ctx.save_table(pd.DataFrame({"x": [1]}), outside)
    assert not list(tmp_path.glob("escaped*")) and not (tmp_path / "abs.csv").exists()
    early = make_run_context(str(world_folder), "2024-06-30", str(tmp_path / "o2"), "r2", "")
    assert early.data.events["occurred_at"].max() <= pd.Timestamp("2024-06-30")


def test_context_logs_to_mlflow(world_folder: Path, tmp_path: Path) -> None:
    import mlflow

    ctx = make_run_context(
        str(world_folder), "", str(tmp_path / "out"), "r-ml", "",
        f"sqlite:///{tmp_path}/m.db", notebook="t_notebook",
    )  # fmt: skip
    ctx.save_table(pd.DataFrame({"a": [1]}), "tables/a")
    run_id = ctx.log_to_mlflow(params={"p": 1}, metrics={"m": 0.5, "nan": float("nan")})
    run = mlflow.MlflowClient(f"sqlite:///{tmp_path}/m.db").get_run(run_id)
    assert run.data.metrics == {"m": 0.5}
    assert run.data.params["p"] == "1" and run.data.tags["winback.run_id"] == "r-ml"
    arts = mlflow.MlflowClient(f"sqlite:///{tmp_path}/m.db").list_artifacts(run_id, "tables")
    assert [a.path for a in arts] == ["tables/a.csv"]


def test_dispatch_dry_run_leaves_the_store_alone_and_enrol_writes_once(
    world, tmp_path: Path
) -> None:
    from winback_ml.data.store import Store

    url = f"sqlite:///{tmp_path}/store.db"
    Store(url).write(world.tables)
    ctx = make_run_context(url, "", str(tmp_path / "out"), "r", "")
    targets = _targets(ctx)
    eng = sa.create_engine(url)

    def n_assignments() -> int:
        with eng.connect() as c:
            return c.execute(sa.text("SELECT COUNT(*) FROM campaign_assignments")).scalar_one()

    before = n_assignments()
    dry = run_dispatch(ctx, targets, "dry_run", holdout=0.25)
    assert n_assignments() == before  # the store is untouched
    assert dry.summary["enrolled"] + dry.summary["holdout"] == len(targets)
    assert set(dry.enrolments["customer_id"]) == set(targets["customer_id"])
    assert not (dry.dry_run_dir / "scratch_store.db").exists()
    assert "to" not in dry.messages.columns

    first = run_dispatch(ctx, targets, "enrol", holdout=0.25, campaign_id="wb-test")
    assert n_assignments() == before + len(targets)  # contacted and holdout both assigned
    again = run_dispatch(ctx, targets, "enrol", holdout=0.25, campaign_id="wb-test")
    assert n_assignments() == before + len(targets)  # idempotent: already enrolled
    assert again.summary["skipped"] == len(targets) and first.summary["skipped"] == 0
    with pytest.raises(PipelineError, match="dispatch_mode"):
        run_dispatch(ctx, targets, "send")


def test_enrol_mode_needs_a_store(world_folder: Path, tmp_path: Path) -> None:
    ctx = make_run_context(str(world_folder), "", str(tmp_path / "o"), "r", "")
    with pytest.raises(PipelineError, match="must be an SQLAlchemy URL"):
        run_dispatch(ctx, _targets(ctx), "enrol")


def test_survival_candidates_by_name() -> None:
    c = survival_candidates("churn", "kaplan_meier, cox")
    assert [type(m).__name__ for m in c.values()] == ["KaplanMeierChurnModel", "CoxChurnModel"]
    with pytest.raises(PipelineError, match="comma-separated list"):
        survival_candidates("return", "cox,deep_magic")
    # every churn model has a name (a model added to CHURN_MODELS used to break the lookup)
    c = survival_candidates("churn", "weibull_cure,xgboost_aft,discrete_hazard")
    assert [type(m).__name__ for m in c.values()] == [
        "WeibullCureChurnModel",
        "XGBoostAFTChurnModel",
        "DiscreteHazardChurnModel",
    ]
    with pytest.raises(PipelineError, match="discrete_hazard"):
        survival_candidates("return", "discrete_hazard")


def test_return_curves_match_kaplan_meier() -> None:
    """Figure numbers: 10 lapses of one reason, 4 returned at days 1..4, 6 censored at 10."""
    eps = pd.DataFrame(
        {
            "stated_reason": ["unused"] * 10,
            "returned": [True] * 4 + [False] * 6,
            "days_to_return": [1, 2, 3, 4] + [np.nan] * 6,
            "days_observed": [1, 2, 3, 4] + [10] * 6,
        }
    )
    c = return_curves_by_reason(eps, max_days=12, min_lapses=1).set_index("day")
    assert c.loc[0, "returned_share"] == 0.0
    assert c.loc[4, "returned_share"] == pytest.approx(0.4)
    assert c.loc[12, "returned_share"] == pytest.approx(0.4)


def test_profit_budget_curve_and_expected_spend() -> None:
    from winback_ml.config import load_config

    t = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "contact": [True, True, False],
            "offer_type": ["discount", "free_month", "none"],
            "discount_pct": [20.0, 0.0, 0.0],
            "discount_months": [3, 1, 0],
            "channel": ["email", "sms", "email"],
            "p_return_offer": [0.5, 0.2, 0.1],
            "p_return_base": [0.1, 0.1, 0.1],
            "expected_incremental_profit": [10.0, 2.0, 0.0],
            "rank": [2, 1, 3],
        }
    )
    mrr = pd.Series({"a": 30.0, "b": 10.0, "c": 99.0})
    spend = expected_spend(t, mrr, load_config(None))
    # a: 0.006 e-mail + 0.5 x 30 x 20 % x 3; b: 0.03 SMS + 0.2 x 10 x 1 month; c: not contacted
    assert spend.tolist() == pytest.approx([0.006 + 9.0, 0.03 + 2.0, 0.0])
    curve = profit_budget_curve(t, spend)
    assert curve["rank"].tolist() == [1, 2]
    assert curve["spend"].tolist() == pytest.approx([2.03, 11.036])
    assert curve["profit"].tolist() == pytest.approx([2.0, 12.0])


def test_dry_run_removes_the_scratch_store_when_enrolment_fails(
    world_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scratch copy holds e-mails and phones: a failing dry run must not leave it behind."""
    import winback_ml.dispatch.enrol as enrol

    ctx = make_run_context(str(world_folder), "", str(tmp_path / "o"), "r", "")
    targets = _targets(ctx)

    def boom(*args, **kwargs):
        raise RuntimeError("enrolment failed")

    monkeypatch.setattr(enrol, "enrol_targets", boom)
    with pytest.raises(RuntimeError, match="enrolment failed"):
        run_dispatch(ctx, targets, "dry_run")
    assert not (tmp_path / "o" / "dispatch_dry_run" / "scratch_store.db").exists()
