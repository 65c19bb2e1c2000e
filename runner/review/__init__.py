"""Review before a run: `runplan PLAN --dry-run` against the live cluster.

live.py runs the review (project.py keeps the projected objects and sends
every change with dryRun=All; preview.py reviews one step; expect.py says what
waits and verifies expect; diff.py the semantic diffs; render.py prints them).
approved.py saves a review and checks a run against it (`--approved`).
The review writes nothing: only GETs, LISTs and dry-run requests.
"""
