"""A plan's API calls at each API's batch size, and what of it fits the 24 h budget (OPS-2, OPS-8)."""

from __future__ import annotations

import pandas as pd

from crm_pipelines.sync.calls import calls_needed, fit_budget


def _work(updates: int, creates: int, obj: str = "contact") -> pd.DataFrame:
    rows = [("update", obj, f"u{i:05d}") for i in range(updates)]
    rows += [("create", obj, f"c{i:05d}") for i in range(creates)]
    return pd.DataFrame(rows, columns=["action", "object", "record_id"])


def test_ops8_calls_are_records_over_each_apis_batch_size_per_object_and_action():
    work = _work(250, 101)
    assert calls_needed("hubspot", work) == 3 + 2  # 100 per batch
    assert calls_needed("salesforce", work) == 2 + 1  # 200 per sObject Collections call
    assert calls_needed("dynamics", work) == 1 + 1  # 1,000 per $batch
    assert calls_needed("hubspot", pd.concat([_work(1, 0), _work(1, 0, "company")])) == 2  # one object per batch


def test_ops2_what_does_not_fit_the_budget_is_deferred_updates_first_in_a_stable_order():
    work = _work(250, 150).sample(frac=1, random_state=3)  # order of arrival does not matter
    kept, deferred = fit_budget("hubspot", work, calls_left=4)
    assert calls_needed("hubspot", kept) <= 4 and len(kept) + len(deferred) == len(work)
    assert (kept["action"] == "update").sum() == 250 and (kept["action"] == "create").sum() == 100
    assert set(deferred["record_id"]) == {f"c{i:05d}" for i in range(100, 150)}  # the same ones every time
    again, _ = fit_budget("hubspot", work.sample(frac=1, random_state=4), calls_left=4)
    assert set(again["record_id"]) == set(kept["record_id"])
    everything, none = fit_budget("hubspot", work, calls_left=None)
    assert len(everything) == len(work) and none.empty
    nothing, all_deferred = fit_budget("hubspot", work, calls_left=0)
    assert nothing.empty and len(all_deferred) == len(work)
