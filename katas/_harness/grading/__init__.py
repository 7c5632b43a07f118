"""`python -m katas grade`: score a submission in a fresh tree, one kata per subprocess.

tree.py builds the working tree, child.py is the pytest plugin inside each kata's
subprocess, run.py drives the subprocesses and computes the score, report.py
writes it out; export.py and bundle.py package the grader for learners and
Gradescope.
"""
