"""Progress bars for long loops that stay quiet for short ones (the tested notebooks gain no output)."""

import time

from tqdm.auto import tqdm

# a loop left to decide (progress=None) shows its bar only once it has run this long
QUIET_SECONDS = 10.0


class Progress:
    """Progress over total steps: a tqdm bar at once (progress=True), never (False), or (None) only once the loop
    has run QUIET_SECONDS, so that short calls make no bar at all (nor a notebook widget). Use as a context manager
    and call update() once per step; ``done`` counts the steps."""

    def __init__(self, total: int, what: str, progress=None):
        if progress is not None and not isinstance(progress, bool):
            raise TypeError(
                f"progress must be True, False or None (show a bar only when slow), got {progress!r}."
            )
        self.total, self.what, self.done, self.bar = total, what, 0, None
        self.wait = None if progress is False else (0.0 if progress else QUIET_SECONDS)
        self.start = time.perf_counter()
        if self.wait == 0.0:
            self._open()

    def _open(self):
        self.bar = tqdm(total=self.total, initial=self.done, desc=self.what, mininterval=0.5)

    def update(self, **postfix) -> None:
        """One step done; postfix (e.g. loss='0.031') is shown after the bar when there is one."""
        self.done += 1
        if self.bar is None and self.wait is not None and time.perf_counter() - self.start >= self.wait:
            self._open()
        elif self.bar is not None:
            self.bar.update()
        if self.bar is not None and postfix:
            self.bar.set_postfix(postfix, refresh=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
