"""Use cases: each function takes the store (and settings) and does one thing staff, residents or the scheduler ask for."""
