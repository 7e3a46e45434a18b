"""Verifiable tasks (notebook 07): the ground the SFT data, evaluation and RL stand on.

  problems.py         math in four tiers and Python problems, generated from `templates/`
  verify.py           math answers checked with Math-Verify; the program in a code answer
  sandbox.py, jail.py model-written code runs only here, in a jailed process per test
  rewards.py          rule-based rewards, the test-difficulty code reward among them
  difficulty.py       test difficulty levels from the pass rates of graded solutions
  decontamination.py  n-gram overlap between problems and a corpus
"""
