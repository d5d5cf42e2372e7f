"""Who is asking: the authenticated user of a request, as every package's services see it."""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("specialist", "supervisor", "maintainer")


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    name: str
    role: str

    @property
    def is_supervisor(self) -> bool:
        return self.role in ("supervisor", "maintainer")

    def can_see_specialist(self, specialist_id: int | None) -> bool:
        return self.is_supervisor or specialist_id == self.user_id


__all__ = ["ROLES", "Principal"]
