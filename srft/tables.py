"""Tables that a stage writes and the report shows alike."""

from __future__ import annotations

from srft.outputs import IterationRow


def iteration_table(table: list[IterationRow]) -> str:
    """The per-iteration table of stage 6 as Markdown."""
    lines = [
        "| iteration | score | RM accuracy (test pairs) | KL (nats/token) | entropy (nats) "
        "| KL rollbacks | status |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in table:
        lines.append(
            f"| {row.iteration} | {row.score:.4f} | {row.reward_accuracy_val:.4f} | "
            f"{row.kl_per_token_nats:.4f} | {row.entropy_nats:.4f} | {row.rollbacks} | "
            f"{row.status} |"
        )
    return "\n".join(lines)
