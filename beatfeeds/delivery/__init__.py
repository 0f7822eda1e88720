"""Getting entries out: the posting adapters for outside services and email (no SQL)."""
