"""Helpers shared by the tests: plain functions, classes and constants (fixtures live in the
conftest.py files). Their asserts are rewritten by pytest, as in test modules."""

import pytest

pytest.register_assert_rewrite("tests.support")
