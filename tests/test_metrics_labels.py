"""The queue label of /metrics: bounded, and never more than a valid queue name."""

from __future__ import annotations

import pytest

pytest.importorskip("prometheus_client")

from queuectl.web.metrics import MAX_QUEUE_LABELS, OTHER_QUEUE, QueueLabels  # noqa: E402


def test_the_first_queues_keep_their_names_and_the_rest_are_summed():
    labels = QueueLabels(limit=3)
    assert labels.see(["b", "a", "d", "c"]) == {"a": "a", "b": "b", "c": "c", "d": OTHER_QUEUE}
    assert labels.label("e") == OTHER_QUEUE
    assert labels.label("a") == "a", "an assigned queue keeps its label"
    assert labels.assigned() == ["a", "b", "c"]
    assert labels.overflowed


def test_a_label_is_never_arbitrary_text():
    labels = QueueLabels(limit=MAX_QUEUE_LABELS)
    for bad in ("", "a b", 'x"}', "é", "x" * 129, "a\nb", OTHER_QUEUE):
        assert labels.label(bad) == OTHER_QUEUE, bad
    assert labels.assigned() == []
    assert labels.label("web-1.x:y") == "web-1.x:y"
