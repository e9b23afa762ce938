"""The admin key tests use: admin operations need one, always (issue 15)."""

from __future__ import annotations

ADMIN_KEY = "test-admin-key"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
"""Headers that carry the admin key (an admin key works as an API key too)."""
