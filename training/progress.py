"""Training progress for people: where the run is, how fast, and when it will really end.

On a terminal it is a Keras progress bar; in a log file (CI, `nohup`, a pipe) it is one plain
line every `every` steps, never a growing line of carriage returns. With a time budget
(--max_minutes) the end shown is the step the budget will stop the run at (from the measured
step rate), not the full epoch count that will never be reached.
"""

import sys
import time

import keras


class Progress:
    """Reports training steps from `start_step` towards `total_steps`.

    Args:
        start_step: the step the run (re)starts from.
        total_steps: the step count it trains to at most.
        max_minutes: its time budget (0: none).
        every: steps between lines when the output is not a terminal.
        stream: where it writes (a terminal gets the bar).
        clock: seconds since some origin (tests give a fake one).
    """

    def __init__(
        self, start_step, total_steps, max_minutes=0.0, every=50, stream=None, clock=time.monotonic
    ):
        self.start_step, self.total_steps = int(start_step), int(total_steps)
        self.max_minutes, self.every = float(max_minutes or 0.0), max(1, int(every))
        self.stream = stream or sys.stdout
        self.clock = clock
        self.started = clock()
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.bar = (
            # No stateless metrics: each step's losses, not a running average since the start.
            keras.utils.Progbar(total_steps, stateless_metrics=(), unit_name="step")
            if self.interactive
            else None
        )

    def expected_end(self, step):
        """The step the run will stop at: total_steps, or where the time budget ends it."""
        elapsed = self.clock() - self.started
        done = step - self.start_step
        if not self.max_minutes or done <= 0 or elapsed <= 0:
            return self.total_steps
        reachable = self.start_step + int(done / elapsed * 60.0 * self.max_minutes)
        return max(step, min(self.total_steps, reachable))

    def update(self, step, losses):
        end = self.expected_end(step)
        if self.bar is not None:
            self.bar.target = end
            self.bar.update(step, values=list(losses.items()), finalize=False)
            return
        if step % self.every and step != self.start_step + 1:
            return
        elapsed = self.clock() - self.started
        per_step = elapsed / max(1, step - self.start_step)
        remaining = per_step * max(0, end - step)
        budget = " (time budget)" if end < self.total_steps else ""
        values = " ".join(f"{name} {value:.4g}" for name, value in losses.items())
        print(
            f"step {step}/{end}{budget} {per_step:.3g} s/step, elapsed {_minutes(elapsed)}, "
            f"left {_minutes(remaining)} - {values}",
            file=self.stream,
            flush=True,
        )

    def finish(self, step):
        if self.bar is not None:
            self.bar.target = step
            self.bar.update(step, finalize=True)


def _minutes(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s"
