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


# -- bounds: whatever a sender claims, the tracker stays small and its counts plausible --------


def test_twenty_thousand_scattered_adds_are_accounted_exactly():
    """20,000 holes at once (every other number): each add finds its place by bisection, so
    this is quick (the old linear merge made it quadratic, several seconds)."""
    t = SeqTracker(max_holes=30_000)
    for s in range(39_999, 0, -2):  # newest first, every other number: 20,000 ranges
        assert t.add(s)
    assert len(t.ranges) == 20_000 and t.ranges[0] == [1, 1] and t.ranges[-1] == [39_999, 39_999]
    assert (t.received, t.duplicates, t.highest) == (20_000, 0, 39_999)
    for s in range(1, 40_000, 2):
        assert not t.add(s)
    assert t.duplicates == 20_000
    for s in range(2, 40_000, 2):  # the backlog fills every hole
        assert t.add(s)
    assert t.ranges == [[1, 39_999]]
    t.settle(None)
    assert (t.received, t.duplicates, t.lost, t.holes_cut) == (39_999, 20_000, 0, 0)


def test_settle_after_twenty_thousand_holes_counts_each_once():
    t = SeqTracker(max_holes=30_000)
    for s in range(1, 40_000, 2):
        t.add(s)
    t.settle(20_000)  # 20,000 and above may still come
    assert t.lost == 9_999  # the even numbers 2..19,998
    assert t.ranges[0] == [1, 19_999] and len(t.ranges) == 1 + 10_000
    t.settle(None)
    assert t.lost == 19_999 and t.ranges == [[1, 39_999]]


def test_holes_tracked_are_bounded_and_the_cut_is_counted():
    t = SeqTracker(max_holes=100)
    for s in range(1, 1_000, 2):  # 499 holes
        t.add(s)
    assert len(t.ranges) == 101  # 100 holes
    assert t.holes_cut == 399
    assert t.ranges[0] == [1, 799]  # the oldest holes were given up, not declared lost
    assert t.received == 500 and t.lost == 0
    t.settle(None)
    assert t.lost == 100 and t.ranges == [[1, 999]]


def test_default_hole_bound_is_ten_thousand():
    t = SeqTracker()
    for s in range(1, 40_001, 2):
        t.add(s)
    assert len(t.ranges) == 10_001 and t.holes_cut == 9_999


def test_a_gap_record_cannot_claim_more_than_an_agent_could_have_produced():
    t = SeqTracker()
    t.add(1)
    t.dropped(0, 2**63 - 1)  # "every sequence number there is was dropped"
    assert t.lost <= 7 * 86400
    assert t.lost + t.implausible == 2**63 - 1  # 0 and everything above 1
    t.dropped(0, 2**63 - 1)  # redelivered: nothing new
    assert t.lost <= 7 * 86400


def test_gap_is_clamped_to_the_sequence_number_range():
    t = SeqTracker(max_gap=10**30)
    t.dropped(-5, 2**70)
    assert t.ranges == [[0, 2**63 - 1]] and t.lost == 2**63


def test_a_sequence_jump_settles_to_a_bounded_loss():
    t = SeqTracker(max_gap=1_000)
    t.add(1)
    t.add(2**62)
    t.settle(None)
    assert t.lost == 1_000 and t.implausible == 2**62 - 2 - 1_000


def test_matches_a_plain_set_model_on_random_streams():
    import random

    rnd = random.Random(7)
    for _ in range(200):
        t = SeqTracker()
        seen: set[int] = set()
        dupes = 0
        for _ in range(rnd.randint(1, 80)):
            if rnd.random() < 0.15:
                a = rnd.randint(1, 60)
                b = a + rnd.randint(0, 8)
                new = set(range(a, b + 1)) - seen
                before = t.lost
                t.dropped(a, b)
                assert t.lost - before == len(new)
                seen |= new
            else:
                s = rnd.randint(1, 60)
                dupes += s in seen
                assert t.add(s) == (s not in seen)
                seen.add(s)
            covered = [n for lo, hi in t.ranges for n in range(lo, hi + 1)]
            assert covered == sorted(seen)
            assert all(b[0] > a[1] + 1 for a, b in zip(t.ranges, t.ranges[1:], strict=False))
        assert t.duplicates == dupes
