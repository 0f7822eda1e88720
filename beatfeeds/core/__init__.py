"""The vocabulary every room shares: models, errors, settings, categories, plain-text and file helpers (imports nothing above it)."""
