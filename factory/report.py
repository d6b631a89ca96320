"""Progress while a run works (items, ETA, tokens/s) and the summary table at its end."""
from __future__ import annotations

import sys
from collections import Counter
from typing import TextIO

from tqdm import tqdm

from llm import Usage


class Progress:
    def __init__(self, total: int, usage: dict[str, Usage], enabled: bool = True, stream: TextIO = sys.stderr,
                 unit: str = "item", desc: str = "synth"):
        self.usage = usage
        self.counts: Counter[str] = Counter()
        self.bar = tqdm(total=total, unit=unit, file=stream, disable=not enabled, dynamic_ncols=True,
                        mininterval=1.0 if stream.isatty() else 10.0, desc=desc)

    def update(self, outcome: str) -> None:
        self.counts["kept" if outcome == "kept" else "rejected"] += 1
        self.bar.set_postfix(kept=self.counts["kept"], rejected=self.counts["rejected"], tok_s=self._rate(),
                             refresh=False)
        self.bar.update(1)

    def refresh(self) -> None:
        """Show the current tokens/s between items (a batch's stages take a while)."""
        self.bar.set_postfix(kept=self.counts["kept"], rejected=self.counts["rejected"], tok_s=self._rate(),
                             refresh=True)

    def _rate(self) -> str:
        computed = sum(u.computed_tokens for u in self.usage.values())
        seconds = sum(u.seconds for u in self.usage.values())
        return f"{computed / seconds:.1f}" if seconds else "-"

    def close(self) -> None:
        self.bar.close()


def summary_table(record: dict, usage: dict[str, Usage], store_rows: int) -> str:
    counts = record.get("counts", {})
    kept, rejected = counts.get("kept", 0), counts.get("rejected", 0)
    total = kept + rejected
    lines = [
        "",
        f"run {record['id']} ({record['status']}) in {record.get('seconds', 0):.0f} s",
        f"  items planned {record.get('planned', 0)}, already done {record.get('skipped_done', 0)}, "
        f"attempted {record.get('attempted', 0)}",
        f"  kept {kept}, rejected {rejected}, keep rate {kept / total:.0%}" if total else "  no item finished",
        f"  items/minute {record.get('items_per_minute', 0)}",
    ]
    reasons = counts.get("rejected_by_reason", {})
    if reasons:
        lines.append("  rejects by reason:")
        width = max(map(len, reasons))
        lines += [f"    {r:<{width}}  {n}" for r, n in sorted(reasons.items(), key=lambda x: -x[1])]
    executor = record.get("executor") or {}
    if executor.get("name") == "ray":
        lines.append(f"  executor ray ({executor['address']}): {executor['workers']} workers, {executor['tasks']} tasks, "
                     f"{executor['worker_restarts']} worker restarts seen, {executor['task_seconds']:.0f} s of task time")
    stages = record.get("stages") or []
    if stages:
        lines.append("  " + "  ".join(f"{st['name']} {st['passed']}/{st['in']}" for st in stages)
                     + "   (items passed / in, per stage)")
    lines.append(f"  {'stage':<10}{'requests':>9}{'replayed':>9}{'prompt tok':>11}{'cached':>8}{'output tok':>11}"
                 f"{'tok/s':>7}{'retries':>8}{'wall s':>8}  model")
    for role, u in usage.items():
        lines.append(f"  {role:<10}{u.requests:>9}{u.replayed:>9}{u.prompt_tokens:>11}{u.cached_prompt_tokens:>8}"
                     f"{u.completion_tokens:>11}{u.tokens_per_second():>7.1f}{u.retries:>8}{u.wall_seconds:>8.0f}"
                     f"  {u.model}")
        if u.failures:
            lines.append(f"  {'':<10}failures: " + ", ".join(f"{k} {n}" for k, n in u.failures.items()))
    lines.append(f"  store now holds {store_rows} kept rows; shards added: {len(record.get('shards', []))}")
    return "\n".join(lines) + "\n"
