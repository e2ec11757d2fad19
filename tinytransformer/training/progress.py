"""A progress bar for the training loop: tqdm when it is installed, plain lines otherwise.

tqdm is an optional dependency (the ``data`` extra). Without it the same calls
print a line every few percent of the run, so a log file still shows how the
loss and the speed evolve, and a one-line note says how to get the bar.
"""

import sys

from ..plots.backend import install_hint, note_once


class Progress:
    """``Progress(total, initial=0)``; ``update(**values)`` after each step, ``write(text)`` for a
    line that must not be overwritten by the bar, ``close()`` at the end. ``enabled=False`` is silent."""

    def __init__(self, total, initial=0, enabled=True, desc="train"):
        self.total, self.count, self.enabled, self.desc = total, initial, enabled, desc
        self.bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                self.every = max(1, total // 50)
                note_once(f"a plain line every 2% instead of a progress bar, since tqdm is not installed: "
                          f"{install_hint('tqdm')}")
            else:
                self.bar = tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True)

    def update(self, **values):
        """One step done; ``values`` (name -> already formatted text) are shown beside the bar."""
        self.count += 1
        if self.bar is not None:
            self.bar.set_postfix(values, refresh=False)
            self.bar.update(1)
        elif self.enabled and (self.count % self.every == 0 or self.count == self.total):
            shown = " ".join(f"{k} {v}" for k, v in values.items())
            print(f"{self.desc} {self.count}/{self.total} {shown}", file=sys.stderr, flush=True)

    def write(self, text):
        if self.bar is not None:
            self.bar.write(text)
        elif self.enabled:
            print(text, flush=True)

    def note(self, text):
        """A line on standard error, even when disabled (above the bar when one is drawn)."""
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
