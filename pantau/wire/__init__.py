"""The wire format between agents and collectors: the one package both sides speak through.

`model` holds the typed messages, `codec` their bytes, `topics` where they travel and
`dictionaries` the frozen DEFLATE dictionaries of version 2. See docs/wire-format.md.
"""

from pantau.wire.codec import (
    WireError,
    decode_gap,
    decode_sample_set,
    decode_status,
    encode_gap,
    encode_sample_set,
    encode_status,
    name_check,
)
from pantau.wire.model import (
    SAMPLE_SET_VERSION,
    SAMPLE_SET_VERSIONS,
    SCHEMA_VERSION,
    Field,
    Gap,
    Group,
    Kind,
    SampleSet,
    Status,
    Value,
)
from pantau.wire.topics import (
    IDENTIFIER,
    TOPIC_PREFIX,
    BadTopic,
    gap_topic,
    metrics_topic,
    parse_topic,
    status_topic,
)

__all__ = [
    "IDENTIFIER",
    "SAMPLE_SET_VERSION",
    "SAMPLE_SET_VERSIONS",
    "SCHEMA_VERSION",
    "TOPIC_PREFIX",
    "BadTopic",
    "Field",
    "Gap",
    "Group",
    "Kind",
    "SampleSet",
    "Status",
    "Value",
    "WireError",
    "decode_gap",
    "decode_sample_set",
    "decode_status",
    "encode_gap",
    "encode_sample_set",
    "encode_status",
    "gap_topic",
    "metrics_topic",
    "name_check",
    "parse_topic",
    "status_topic",
]
