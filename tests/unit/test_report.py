import pytest

from app.observability.report import build_report, percentile, suggestions, timeline
from app.observability.requestlog import RequestRow


def row(status=200, total=100.0, provider="p", finish="stop", retrieval=None, session="s", ts=1.0):
    return RequestRow(ts=ts, request_id="r", session_id=session, model="m", provider=provider, status=status,
                      total_ms=total, ttft_ms=total / 2, finish_reason=finish if status < 400 else None,
                      retrieval_ms=retrieval, error_code=None if status < 400 else "e",
                      error_message=None if status < 400 else "boom")


@pytest.mark.parametrize("values, q, expected", [([], 50, None), ([5], 99, 5), ([1, 2, 3, 4], 50, 2),
                                                 (list(range(1, 101)), 95, 95), (list(range(1, 101)), 99, 99)])
def test_percentile_nearest_rank(values, q, expected):
    assert percentile(values, q) == expected


def test_suggestions_by_severity_with_their_evidence():
    rows = [row(status=500) for _ in range(3)] + [row() for _ in range(7)]
    rows += [row(retrieval=25.0, finish="length") for _ in range(10)]
    found = suggestions(rows)
    assert [s["severity"] for s in found] == ["high", "medium", "low"]
    assert found[0]["evidence"]["error_rate"] == pytest.approx(0.15)
    assert found[1]["evidence"]["retrieval_p95_ms"] == 25.0


def test_healthy_rows_give_no_suggestions_and_the_report_compares_periods():
    now = [row(total=t) for t in (100, 200, 300)]
    before = [row(total=t) for t in (50, 60)]
    report = build_report(now, before, days=7)
    assert report["suggestions"] == []
    assert report["current"]["total_ms"]["p50"] == 200
    assert report["change"]["requests"] == 1
    assert report["change"]["total_p95_ms"] == 300 - 60
    assert report["current"]["patterns"]["turns_per_session"]["p50"] == 3


def _row(ts: float, model: str = "m", total: float = 10.0, **stages) -> RequestRow:
    return RequestRow(ts=ts, request_id=f"r{ts}", session_id=None, model=model, provider="p", status=200,
                      total_ms=total, **stages)


@pytest.mark.parametrize("times, starts", [
    ([], []),
    ([0.0, 1.0, 9.9], [0.0, 5.0]),
    ([5.0], [5.0]),
    ([-1.0, 10.0, 11.0], []),  # outside the period
    ([9.999999], [5.0]),
])
def test_the_timeline_cuts_the_period_into_spans_with_requests(times, starts):
    spans = timeline([_row(t) for t in times], since=0.0, until=10.0, buckets=2)
    assert [s["start"] for s in spans] == starts
    assert all(s["end"] == s["start"] + 5.0 for s in spans)


def test_each_span_has_percentiles_per_model_and_per_stage():
    rows = [_row(1.0, "a", 10.0, retrieval_ms=2.0), _row(2.0, "a", 30.0, retrieval_ms=4.0), _row(3.0, "b", 50.0)]
    (span,) = timeline(rows, since=0.0, until=10.0, buckets=1)
    assert span["requests"] == 3
    assert span["models"]["a"] == {"count": 2, "p50": 10.0, "p95": 30.0, "p99": 30.0}
    assert span["models"]["b"]["p50"] == 50.0
    assert span["stages"]["retrieval"]["count"] == 2 and span["stages"]["embed"]["count"] == 0


def test_the_report_ends_its_timeline_at_the_given_time():
    report = build_report([_row(86400 * 6.5)], [], days=1, until=86400 * 7)
    assert [s["start"] for s in report["timeline"]] == [86400 * 6 + 3600 * 12]
