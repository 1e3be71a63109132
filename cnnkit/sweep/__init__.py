"""`cnnkit sweep`: many trainings of specs and hyper-parameters, compared in one table.

plan.py decides the trials and saves them (sweep.json) before any runs; runner.py trains
them one after another or in a process pool, with ASHA early stopping; ray_runner.py hands
them to Ray Tune; results.py keeps the table.  Each trial is a normal run directory, so
`cnnkit evaluate`, `predict` and `visualize` work on it.  Ray is imported only by
ray_runner.py, which only ``--ray`` imports.
"""
