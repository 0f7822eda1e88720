import pytest

# The helpers of tests/support assert too: pytest rewrites their asserts as in test modules.
pytest.register_assert_rewrite("tests.support")
