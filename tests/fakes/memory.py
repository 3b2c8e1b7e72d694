"""In-memory adapters of the repository ports, for the domain tests (`tests/domain/`).

Each keeps what the DynamoDB adapter would store, as typed records, and refuses what DynamoDB's
conditions would refuse (a second create, a stale version), so a desk behaves over them as it does
over the table. `tests/integration/test_repository_contract.py` runs the same checks on both.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sotong.notify.model import MessageRequest


@dataclass
class InMemoryOutbox:
    """The transactional outbox: the message requests written with each state change."""

    hospital_id: str = "demo"
    requests: list[MessageRequest] = field(default_factory=list)

    def add(self, requests: Iterable[MessageRequest]) -> None:
        seen = {r.idempotency_key for r in self.requests}
        for request in requests:
            if request.idempotency_key not in seen:  # one outbox item per message id
                self.requests.append(request)
                seen.add(request.idempotency_key)

    def templates(self) -> list[str]:
        return [r.template_id for r in self.requests]
