"""``python -m pipeline.identity``: the comparisons, their levels and the blocking keys as Markdown, read from
their declarations (the README's Identity section holds this output; a test keeps the two equal)."""

from __future__ import annotations

import math

from pipeline.identity.compare import COMPARISONS
from pipeline.identity.keys import BLOCKING_KEYS


def markdown() -> str:
    lines = [
        "| comparison | level | meaning | m | u | weight |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for c in COMPARISONS.values():
        for i, level in enumerate(c.levels):
            kind = " (identifier)" if c.identifier else f" ({c.group})" if c.group else ""
            name = f"`{c.name}`{kind}" if i == 0 else ""
            veto = " **veto**" if level.veto else " **apart**" if level.apart else ""
            weight = math.log2(level.m / level.u)
            lines.append(
                f"| {name} | `{level.label}`{veto} | {level.meaning} | {level.m:.3g} | {level.u:.3g} | {weight:+.1f} |"
            )
    groups = sorted({c.group for c in COMPARISONS.values() if c.group})
    lines += ["", f"Comparisons of a group ({', '.join(groups)}) disagree together: where several disagree, only"]
    lines += ["the strongest disagreement counts.", ""]
    lines += ["| blocking key | derived from | enough alone |", "| --- | --- | --- |"]
    lines += [f"| `{k.type}` | {k.meaning} | {'yes' if k.alone else ''} |" for k in BLOCKING_KEYS]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
