"""One progress line per job: pair, step, best val CER, evaluations / budget, advisor use.

On a terminal the line is rewritten in place (tqdm); otherwise (a log file, a SLURM job,
a pipe) the same line is logged every ``every_s`` seconds and when the run ends, never
once per query. The run loop drives it through tqdm's small API (``set_postfix_str``,
``update``, ``close``), so either form is one object.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

log = logging.getLogger("optimize.progress")


class RunProgress:
    """The job's progress line.

    Args:
        total: Pairs to run.
        mode: None: in place on a terminal, logged every ``every_s`` otherwise; True: in
            place always; False: nothing.
        every_s: Seconds between logged lines (when not in place).
        job: The job's number in a sweep (labels the line; on a terminal parallel jobs
            get a line each), or None.
    """

    def __init__(self, total: int, mode: bool | None = None, every_s: float = 60.0, job: int | None = None) -> None:
        self.total, self.n, self.every_s = total, 0, max(0.0, float(every_s))
        self.desc = "pairs" if job is None else f"job {job} pairs"
        self.postfix = ""
        self._started = self._last = time.monotonic()
        self._logged: tuple[int, str] | None = None
        in_place = mode is True or (mode is None and _is_terminal())
        self._logging = mode is None and not in_place
        self._bar: Any = None
        if in_place:
            from tqdm import tqdm  # lazy: keeps `--help` fast

            self._bar = tqdm(total=total, desc=self.desc, unit="pair", file=sys.stderr, dynamic_ncols=True,
                             position=job, leave=True)

    def line(self) -> str:
        """The current line, as logged."""
        elapsed = int(time.monotonic() - self._started)
        return f"{self.desc} {self.n}/{self.total} | {self.postfix} | {elapsed // 60}:{elapsed % 60:02d} elapsed"

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=True)
        self._maybe_log()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        self._maybe_log()

    def _maybe_log(self, force: bool = False) -> None:
        now = time.monotonic()
        if self._logging and (force or now - self._last >= self.every_s):
            state = (self.n, self.postfix)
            if force and state == self._logged:
                return  # the closing line would repeat the last one
            self._last, self._logged = now, state
            log.info("%s", self.line())

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._logging:
            self._maybe_log(force=True)
            self._logging = False


def _is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stderr
        return False


def progress_text(pair: str, step: int, best_val_cer: float | None, used: int, limit: int | None,
                  advisor_calls: int | None, advisor_usd: float | None) -> str:
    """The fields of the line: pair, step (scores made), best full-val CER so far,
    evaluations used / the pair's budget, and the run's advisor calls and dollars."""
    best = "-" if best_val_cer is None else f"{best_val_cer:.3f}"
    text = f"{pair} | step {step} | best val CER {best} | evals {used}/{'no limit' if limit is None else limit}"
    if advisor_calls is not None:
        text += f" | advisor {advisor_calls} calls ${advisor_usd or 0.0:.4f}"
    return text
