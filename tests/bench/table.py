"""Benchmark output: one table per benchmark, each figure beside its reference and target."""

from dataclasses import dataclass, field


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([_fmt(c) for c in cells])

    def render(self) -> str:
        widths = [max(len(str(x)) for x in col) for col in zip(self.columns, *self.rows, strict=False)]
        line = "+-" + "-+-".join("-" * w for w in widths) + "-+"
        out = [
            f"\n{self.title}",
            line,
            "| " + " | ".join(c.ljust(w) for c, w in zip(self.columns, widths, strict=True)) + " |",
            line,
        ]
        out += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in self.rows]
        out.append(line)
        return "\n".join(out)

    def print(self) -> None:
        print(self.render(), flush=True)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
