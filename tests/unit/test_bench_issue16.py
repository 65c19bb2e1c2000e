"""The report's goal rows of issue 16 (bench/report.py): figures side by side, verdicts."""

from __future__ import annotations

import math

from bench import report


def contender(median: float, in_process: float = math.nan, watch: int = 0,
              touched: int = 0) -> dict[str, object]:
    return {"median": median, "in_process": in_process, "touched": touched,
            "requests": {"watch": watch}}


def test_each_goal_is_a_row_with_its_figures_and_verdict() -> None:
    results = {
        "e2e": {"contenders": {"limit": contender(0.5), "kubectl": contender(1.0),
                               "runplan-steps": contender(0.9, 0.52, watch=2, touched=2),
                               "runplan": contender(1.4, 0.8, watch=3, touched=2)}},
        "e2e_slow": {"contenders": {"limit": contender(4.0), "runplan-steps": contender(4.2)}},
        "fanout": {"50": {"run": 6.0, "wall": 7.5, "per_step": 2.06, "watches": 3,
                          "touched": 3}, "cluster_limit": {"50": 5.0}},
    }
    text = report.issue16_section(results)
    assert ("| runplan (only the steps that change or wait) ≤ the kubectl script, wall | "
            "0.90 s vs 1.00 s | met |") in text
    assert "| runplan, the playbook as shipped, ≤ 1.3× the kubectl script, wall | 1.40× " \
           "(1.40 s vs 1.00 s) | not met |" in text
    assert "in-process, ≤ 1.05× the limit | 1.04× (0.52 s vs 0.50 s) | met |" in text
    assert "≤ 1.10× the limit, wall | 1.05× (4.20 s vs 4.00 s) | met |" in text
    assert "the playbook as shipped, ≤ 1.10× the limit, wall | n/a | n/a |" in text
    assert "≤ 1.25× the cluster's own time | 1.20× (6.00 s vs 5.00 s) | met |" in text
    assert "requests per step ≤ 3 (lock, journal and preflight included) | 2.06 (bound 3) | " \
           "met |" in text
    assert "end to end, runplan: watches per run ≤ resources × namespaces touched | " \
           "3.00 (bound 2) | not met |" in text


def test_the_floor_is_the_clients_import_as_a_run_does_it() -> None:
    rows = {"kubectl": contender(0.56), "runplan-steps": contender(0.60)}
    startup = {"rows": {report.CLIENT_IMPORT: {"median": 0.12},
                        report.KUBERNETES_IMPORT: {"median": 0.23},
                        "python -c pass": {"median": 0.02}}}
    text = report._floor({"startup": startup}, rows)
    assert "in 0.120 s here, where the whole package (`python -c 'import kubernetes'`) " \
           "takes 0.230 s" in text
    assert "would take 0.50 s against the kubectl script's 0.56 s" in text
    assert report._floor({}, rows) == ""


def test_the_fanout_names_the_clusters_time_beside_a_client_costing_what_runplan_costs() -> None:
    wide = {"wall": 7.5, "run": 6.6, "per_step": 1.2, "mutating_per_step": 0.66,
            "watches_per_step": 0.03, "cpu": 2.1}
    fan = {"1": {**wide, "run": 0.2, "wall": 0.6, "cpu": 0.5}, "50": wide, "wall_ratio": 12.5,
           "run_ratio": 33.0, "cluster_limit": {"1": 0.2, "50": 5.5}, "runs": 5,
           "failures": [], "contended_limit": 6.0, "bystander_duty": 0.24}
    text = report.fanout_section(fan)
    assert "keeps 24% of one core busy" in text
    assert "the cluster itself needs 6.00 s for the same 50 rollouts, and runplan's run " \
           "takes 1.10× that" in text
    assert "takes 1.20× the cluster's time" in text
    assert "bystander" not in report.fanout_section({**fan, "contended_limit": math.nan})
    assert "three watches" not in text
    watched = report.fanout_section({**fan, "watched_limit": 6.6})
    assert "the cluster needs 6.60 s, and runplan's run takes 1.00× that" in watched


def test_the_bystanders_share_is_the_runs_cpu_past_start_up() -> None:
    from bench import fanout
    assert fanout._duty({"cpu": 2.1, "run": 6.4}, {"cpu": 0.5}) == 0.25
    assert fanout._duty({"cpu": 0.4, "run": 6.4}, {"cpu": 0.5}) == 0.0


def test_journal_and_lock_goals_come_from_the_fanout_and_the_soak_run() -> None:
    results = {"e2e": {"contenders": {}}, "fanout": {"50": {"journal_per_step": 0.16}},
               "bookkeeping": {"steps": 5, "journal_writes": 5, "lock_requests": 10,
                               "minutes": 2.04, "ok": True}}
    text = report.issue16_section(results)
    assert "| journal: ≤ 1 write per finished step, fan-out (100 steps) | 0.16 (bound 1) | " \
           "met |" in text
    assert "a 5-step run with a 120 s soak | 1.00 (bound 1) | met |" in text
    assert "take, renewals, release) | 4.90 (bound 5) | met |" in text
    assert "lasted 122.4 s: 5 journal writes (ConfigMap create and patches) for 5 finished " \
           "steps, 10 Lease requests" in text
    assert "n/a" in report.issue16_section({"e2e": {"contenders": {}}, "fanout": {}})


def compile_row(steps: int, wall: float, peak_mib: float, growth: float = 1.0) -> dict[str, object]:
    return {"steps": steps, "yaml_kib": steps // 12, "wall": wall, "cpu": wall,
            "us_per_step": wall / steps * 1e6, "growth": growth, "peak_mib": peak_mib,
            "rounds": 3, "wall_min": wall * 0.9, "wall_max": wall * 1.5}


def test_compile_rows_are_the_median_of_cold_runs_with_their_spread() -> None:
    rows = [compile_row(1_000, 0.1, 8.0), compile_row(5_000, 0.45, 26.0),
            compile_row(10_000, 1.1, 60.0)]
    text = report.compile_section(rows)
    assert "| 5,000 | 416 KiB | 0.450 | 0.405 | 0.675 |" in text
    assert "compiled cold in 3 fresh processes; the row is the median" in text
    assert "| compile 5,000 steps ≤ 0.5 s in-process | 0.450 s wall, 0.450 s CPU | met |" in text
    assert "| compile 10,000 steps ≤ 1.0 s in-process | 1.100 s wall, 1.100 s CPU | not met |" \
        in text
    assert "| memory linear: peak per step at 10,000 ≤ 1.25× that at 5,000 | 1.15× | met |" in text


def test_the_playbooks_extra_steps_are_compared_like_for_like_and_said() -> None:
    rows = {"limit": contender(0.33), "runplan": {**contender(0.74, 0.37), "extra_steps": 0.031}}
    results = {"e2e": {"contenders": rows}, "fanout": {
        "50": {"run": 5.6, "wall": 6.1, "outside": 0.5}, "1": {"outside": 0.36},
        "cluster_limit": {"50": 4.6}}}
    text = report.issue16_section(results)
    assert "the playbook as shipped, in-process, ≤ 1.05× the limit | 1.12× (0.37 s vs " \
           "0.33 s) | not met |" in text
    assert "does not run (apply, verify_pods), ≤ 1.05× the limit | 1.03× (0.34 s vs 0.33 s) " \
           "| met |" in text
    assert "took 0.031 s a run" in text
    assert "spends 0.50 s outside its run (the 1-Deployment run 0.36 s)" in text


def test_step_windows_carry_each_steps_kind_and_own_duration() -> None:
    from bench import e2e

    output = "\n".join([
        "plain text is skipped",
        '{"event":"step_started","time":"2026-12-07T01:06:02.803Z","step":"install",'
        '"kind":"apply"}',
        '{"event":"step_finished","time":"2026-12-07T01:06:02.827Z","step":"install",'
        '"kind":"apply","duration":0.024}',
        '{"event":"step_started","time":"2026-12-07T01:06:02.829Z","step":"canary",'
        '"kind":"set_image"}',
        '{"event":"step_finished","time":"2026-12-07T01:06:02.837Z","step":"canary",'
        '"duration":0.007}'])
    windows = e2e._step_windows(output)
    assert [(w.kind, w.seconds) for w in windows] == [("apply", 0.024), ("set_image", 0.007)]
    assert math.isclose(windows[0].ended - windows[0].began, 0.025, abs_tol=1e-6)
    assert [w.kind for w in windows if w.kind not in e2e.LIMIT_KINDS] == ["apply"]
