"""What may be published and how it reads: the privacy policy, the personal-data rule and the feed documents (no SQL)."""
