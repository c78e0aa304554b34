"""Run one lesson inside the jupyter container, as `jupyter nbconvert --execute` would, but printing each cell's
text output as it arrives (tests/containers/run.py reads it: lesson 08 prints `docker compose kill spark-job`
for a terminal on the host, and the test, as the learner, runs it there).

    python /app/run_lesson.py /app/test-lessons/03_spark.ipynb

Exits non-zero when a cell raises; the executed notebook is written beside the lesson (`*.ran.ipynb`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

CELL_TIMEOUT_S = 600  # as notebooks/_build.py: a cell stuck this long is a failure, not a slow machine


class StreamingClient(NotebookClient):
    def output(self, outs, msg, display_id, cell_index):
        content = msg.get("content", {})
        text = content.get("text") or content.get("data", {}).get("text/plain", "")
        if text:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
            sys.stdout.flush()
        return super().output(outs, msg, display_id, cell_index)


def main(path: str) -> int:
    lesson = Path(path)
    nb = nbformat.read(lesson, as_version=4)
    client = StreamingClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                             resources={"metadata": {"path": str(lesson.parent)}})
    try:
        client.execute()
    except CellExecutionError as exc:
        print(f"LESSON FAILED: {lesson.name}: {exc}", flush=True)  # noqa: T201
        return 1
    finally:
        nbformat.write(nb, lesson.with_suffix(".ran.ipynb"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
