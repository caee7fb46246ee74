"""docs/metrics stays complete: every field a built-in profile publishes is documented, and
every built-in profile loads, names a category and can be detected."""

from __future__ import annotations

import re

from agent.profiles.model import builtin_profiles


def documented(repo_root) -> str:
    docs = [
        repo_root / "docs" / "metrics.md",
        *sorted((repo_root / "docs" / "metrics").glob("*.md")),
    ]
    return "\n".join(p.read_text() for p in docs)


def test_every_profile_field_is_documented(repo_root):
    text = documented(repo_root)
    names = set(re.findall(r"`([a-z][a-z0-9_]*)`", text))
    missing = {}
    for profile in builtin_profiles().values():
        fields = [s.name for s in profile.scalars]
        # A transform's input columns are not published; what it makes is in its docs.
        fields += [c.name for t in profile.tables if t.transform is None for c in t.columns]
        absent = sorted({f for f in fields if f not in names})
        if absent:
            missing[profile.name] = absent
    assert not missing, f"fields missing from docs/metrics*: {missing}"


def test_vendor_profiles_can_be_detected():
    for profile in builtin_profiles().values():
        if profile.name in ("system", "if-mib"):
            continue
        assert (
            profile.category != "generic"
            or profile.match is None
            or profile.name in ("entity-sensor", "ups-mib", "host-resources")
        ), profile.name
        assert profile.match is not None, f"{profile.name} has no match: never detected"
