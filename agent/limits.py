"""Keep every sample set within what the collector accepts, so a device's excess costs only the
excess: never a message the collector would refuse as a whole.

The collector refuses a message with a tag value over MAX_TAG_CHARS, a text over
MAX_TEXT_CHARS, more rows than MAX_POINTS_PER_MESSAGE or values than MAX_VALUES_PER_MESSAGE,
or more bytes than its max_message_bytes (default MAX_MESSAGE_BYTES): a 4,096-character
sysDescr or a never-ending table would make it refuse every poll of that device, every time,
at the price of a VSAT uplink. Here the agent trims tag values, keeps the first rows that fit
and, if the encoded message is still too large, leaves out its last groups, counting each cut
in the device's errors (`tag_truncated`, `rows_capped`, `message_capped`). Text values are
bounded earlier, where they are converted (agent/profiles/plan.py: longer ones are bad_value).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from pantau.wire import Group, SampleSet, encode_sample_set
from pantau.wire.model import (
    MAX_MESSAGE_BYTES,
    MAX_POINTS_PER_MESSAGE,
    MAX_TAG_CHARS,
    MAX_VALUES_PER_MESSAGE,
    replace_sample_set,
)

TAG_TRUNCATED = "tag_truncated"
ROWS_CAPPED = "rows_capped"
MESSAGE_CAPPED = "message_capped"


def fit_groups(groups: list[Group], errors: Counter[str]) -> list[Group]:
    """The groups with tag values trimmed and only as many rows and values as the collector
    accepts (the first ones: a table's order is the device's), each cut counted in `errors`."""
    out: list[Group] = []
    values = 0
    for i, group in enumerate(groups):
        cost = len(group.fields) + len(group.tags)
        if len(out) >= MAX_POINTS_PER_MESSAGE or values + cost > MAX_VALUES_PER_MESSAGE:
            errors[ROWS_CAPPED] += len(groups) - i
            break
        if any(len(v) > MAX_TAG_CHARS for v in group.tags.values()):
            tags = {}
            for key, value in group.tags.items():
                if len(value) > MAX_TAG_CHARS:
                    errors[TAG_TRUNCATED] += 1
                    value = value[:MAX_TAG_CHARS]
                tags[key] = value
            group = Group(group.measurement, tags, group.fields)
        out.append(group)
        values += cost
    return out


def encode_within(
    sample_set: SampleSet,
    errors: Callable[[int], dict[str, int]],
    max_bytes: int = MAX_MESSAGE_BYTES,
) -> tuple[SampleSet, bytes]:
    """The sample set and its payload, leaving out its last groups until the payload fits in
    `max_bytes`. `errors(cut)` counts `cut` groups left out and returns the device's errors as
    the sample set should carry them."""
    payload = encode_sample_set(sample_set)
    if len(payload) <= max_bytes:
        return sample_set, payload
    groups = sample_set.groups
    keep = len(groups)
    while keep and len(payload) > max_bytes:
        # shrink in proportion to the excess (and at least by one), then check again
        keep = min(keep - 1, int(keep * max_bytes / len(payload)))
        trimmed = _replace_groups(sample_set, groups[:keep], {})
        payload = encode_sample_set(trimmed)
    fitted = _replace_groups(sample_set, groups[:keep], errors(len(groups) - keep))
    return fitted, encode_sample_set(fitted)


def _replace_groups(ss: SampleSet, groups: list[Group], errors: dict[str, int]) -> SampleSet:
    return replace_sample_set(ss, groups=groups, errors=errors or ss.errors)
