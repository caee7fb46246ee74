"""Sequence accounting: duplicates, reported drops and confirmed holes, never a backlog."""

from __future__ import annotations

from collector.sequences import SeqTracker


def test_in_order_stream_has_no_loss_or_duplicates():
    t = SeqTracker()
    for s in range(1, 101):
        assert t.add(s)
    t.settle(None)
    assert (t.received, t.duplicates, t.lost, t.ranges) == (100, 0, 0, [[1, 100]])


def test_duplicates_are_counted_once_each():
    t = SeqTracker()
    for s in [1, 2, 3, 2, 3, 3]:
        t.add(s)
    assert (t.received, t.duplicates) == (3, 3)


def test_newest_first_then_backlog_is_not_a_loss():
    t = SeqTracker()
    t.add(1)
    t.add(100)  # newest first after an outage
    t.settle(2)  # heartbeat: 2..99 still in the agent's outbox
    assert t.lost == 0
    for s in range(2, 100):
        t.add(s)
    t.settle(None)
    assert (t.lost, t.duplicates, t.ranges) == (0, 0, [[1, 100]])


def test_reported_drops_are_lost_exactly_once():
    t = SeqTracker()
    t.add(1)
    t.dropped(2, 50)
    t.dropped(2, 50)  # the gap record was redelivered
    t.add(51)
    t.settle(None)
    assert t.lost == 49
    assert t.ranges == [[1, 51]]


def test_confirmed_hole_is_lost_but_only_below_the_pending_mark():
    t = SeqTracker()
    for s in [1, 2, 5, 9, 10]:
        t.add(s)
    t.settle(8)  # 8 and above may still come: only 3, 4, 6, 7 are lost
    assert t.lost == 4
    t.add(8)
    t.settle(None)
    assert t.lost == 4 and t.ranges == [[1, 10]]
