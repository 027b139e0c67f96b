"""A drill's row of findings, and the table every drill's row is printed in."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field


@dataclass
class Row:
    drill: str
    runs: int = 0
    lost: int = 0
    stuck: int = 0
    half: int = 0
    recovery: list = field(default_factory=list)
    deaths: int = 0
    left_dead: int = 0
    unreadable: int = 0
    store_ok: bool | None = None
    notes: list = field(default_factory=list)

    def recovery_text(self) -> str:
        if not self.recovery:
            return "-"
        return f"{statistics.median(self.recovery):.0f} / {max(self.recovery):.0f} s"

    def missed_a_target(self) -> bool:
        return bool(self.lost or self.stuck or self.half or self.left_dead or self.unreadable or self.store_ok is False)


def print_table(rows: list[Row]) -> None:
    head = ["drill", "runs", "lost", "stuck", "half points", "recovery (median / max)", "worker deaths",
            "left dead", "unreadable failures", "store verifies"]
    body = [[r.drill, str(r.runs), str(r.lost), str(r.stuck), str(r.half), r.recovery_text(), str(r.deaths),
             str(r.left_dead), str(r.unreadable), {True: "yes", False: "NO", None: "-"}[r.store_ok]] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    print()
    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for cells in body:
        print(line(cells))
    print()
    for r in rows:
        for note in r.notes:
            print(f"- {r.drill}: {note}")
    print(flush=True)
