"""Helpers shared by the tests: plain functions, classes and constants (fixtures live in the
conftest.py files). Their asserts are rewritten by pytest (see tests/__init__.py)."""
