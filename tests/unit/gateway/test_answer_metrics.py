"""The gateway's answer metrics (services/gateway/kafka_io.py): each answer counted by kind,
status and reject code, and timed from the send and from the acknowledgement."""

from __future__ import annotations

from prometheus_client import REGISTRY

from libs.messages import OrderStatus
from services.gateway.kafka_io import count_answer
from services.gateway.replies import Kind, Outcome


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_an_answer_is_counted_by_kind_status_and_code_and_timed() -> None:
    rejected = value("gateway_answers_total", kind="amend", status="Rejected", code="-2019")
    new = value("gateway_answers_total", kind="amend", status="New", code="")
    replies = value("gateway_reply_seconds_count", kind="amend")
    slow = value("gateway_reply_seconds_bucket", kind="amend", le="0.005")
    answers = value("gateway_answer_seconds_count", kind="amend")

    count_answer(Kind.AMEND, Outcome(OrderStatus.REJECTED, code=-2019), 1.000, 1.002, 1.004)
    count_answer(Kind.AMEND, Outcome(OrderStatus.REJECTED, code=-2019), 1.000, 1.002, 1.010)
    count_answer(Kind.AMEND, Outcome(OrderStatus.NEW), 1.000, 1.001, 1.003)

    assert value("gateway_answers_total", kind="amend", status="Rejected", code="-2019") == (
        rejected + 2
    )
    assert value("gateway_answers_total", kind="amend", status="New", code="") == new + 1
    assert value("gateway_reply_seconds_count", kind="amend") == replies + 3
    # from the send: 4 ms and 3 ms are within 5 ms, 10 ms is not
    assert value("gateway_reply_seconds_bucket", kind="amend", le="0.005") == slow + 2
    assert value("gateway_answer_seconds_count", kind="amend") == answers + 3
