"""Training progress: plain lines in a log, the time budget's real end."""

import io

from training.progress import Progress


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_log_output_is_one_plain_line_per_interval_ending_where_the_budget_ends():
    clock, stream = _Clock(), io.StringIO()
    # 1000 steps at 0.5 s/step would take 500 s; a 2-minute budget stops the run at step 240.
    progress = Progress(0, 1000, max_minutes=2.0, every=10, stream=stream, clock=clock)
    for step in range(1, 31):
        clock.now = 0.5 * step
        progress.update(step, {"loss": 1.0 / step})
    progress.finish(30)
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert [line.split()[1] for line in lines] == ["1/240", "10/240", "20/240", "30/240"]
    assert "(time budget)" in lines[-1] and "left 1m45s" in lines[-1]
    assert lines[-1].endswith("loss 0.03333")


def test_without_a_budget_the_end_is_the_step_count():
    clock, stream = _Clock(), io.StringIO()
    progress = Progress(100, 200, max_minutes=0, every=50, stream=stream, clock=clock)
    clock.now = 10.0
    progress.update(150, {"loss": 0.5})
    assert progress.expected_end(150) == 200
    assert stream.getvalue().startswith("step 150/200 0.2 s/step")
    assert "(time budget)" not in stream.getvalue()
