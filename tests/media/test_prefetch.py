"""Decoding ahead in a thread: same items in order, errors where they happened, bounded, and the
producer stops and closes its source when the consumer stops."""

import threading
import time

import pytest

from curation.media.prefetch import prefetch


def test_items_in_order():
    assert list(prefetch(iter(range(100)), depth=3)) == list(range(100))
    assert list(prefetch(iter([]))) == []


def test_an_error_is_raised_at_its_item():
    def items():
        yield 1
        yield 2
        raise ValueError("damaged packet")

    seen = []
    with pytest.raises(ValueError, match="damaged packet"):
        for item in prefetch(items()):
            seen.append(item)
    assert seen == [1, 2]


def test_at_most_depth_items_wait():
    produced = []

    def items():
        for i in range(1000):
            produced.append(i)
            yield i

    stream = prefetch(items(), depth=4)
    assert next(stream) == 0
    time.sleep(0.3)  # the producer has had time to run as far ahead as it may
    # one handed out, four queued, one more produced and waiting for room
    assert len(produced) <= 1 + 4 + 1
    stream.close()


def test_stopping_early_closes_the_source_before_returning():
    closed = threading.Event()

    def items():
        try:
            for i in range(10**9):
                yield i
        finally:
            closed.set()

    for item in prefetch(items(), depth=2):
        if item == 5:
            break
    # break closed the generator: its finally has run, the source's too
    assert closed.is_set()
    assert not any(t.name == "prefetch" and t.is_alive() for t in threading.enumerate())


def test_a_consumer_error_stops_the_producer():
    closed = threading.Event()

    def items():
        try:
            yield from range(10**9)
        finally:
            closed.set()

    def consume():
        for item in prefetch(items()):
            if item == 3:
                raise RuntimeError("detector failed")

    with pytest.raises(RuntimeError):
        consume()
    assert closed.is_set()
