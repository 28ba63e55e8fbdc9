# A package, so its conftest.py is imported as `aws.conftest` and never replaces the
# `conftest` module that tests/*.py import helpers from.
