"""What `dag-factory run` prints per task: the child's events turned into lines (no Airflow needed)."""

from __future__ import annotations

import io

from dag_factory.airflow.progress import STARTED, ProgressPrinter, TaskEvent

MODELS = ["logistic_regression", "svm"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def events() -> list[TaskEvent]:
    return [TaskEvent("load_data", STARTED), TaskEvent("load_data", "success", seconds=3.84),
            TaskEvent("train", STARTED, label="1", mapped=2),
            TaskEvent("train", "up_for_retry", label="svm", mapped=2, seconds=0.3, detail="ValueError: bad\nweights"),
            TaskEvent("train", "failed", label="svm", mapped=2, try_number=2, seconds=0.3, detail="ValueError: bad"),
            TaskEvent("train", "success", label="logistic_regression", mapped=2, seconds=9.9),
            TaskEvent("promote", "upstream_failed")]


def test_a_file_gets_one_line_per_finished_task_with_errors_under_it_and_the_model_count():
    out = io.StringIO()
    printer = ProgressPrinter(out, lambda model: f"CV roc_auc 0.99 ({model})", MODELS)
    for event in events():
        printer.show(TaskEvent.parse(event.line()))  # through the child's line, as the parent reads it
    printer.close()
    assert [line.split() for line in out.getvalue().splitlines()] == [
        ["load_data", "success", "3.8", "s"],
        ["train[svm]", "up_for_retry", "(try", "1)", "0.3", "s", "[0/2", "models", "done]"],
        ["ValueError:", "bad"], ["weights"],
        ["train[svm]", "failed", "(try", "2)", "0.3", "s", "[1/2", "models", "done]"],
        ["ValueError:", "bad"],
        ["train[logistic_regression]", "success", "9.9", "s", "CV", "roc_auc", "0.99", "(logistic_regression)",
         "[2/2", "models", "done]"],
        ["promote", "upstream_failed"]]


def test_a_terminal_sees_the_running_task_on_a_line_that_the_finished_one_replaces():
    out = Terminal()
    printer = ProgressPrinter(out, lambda model: "", MODELS)
    for event in events()[:3]:
        printer.show(event)
    assert out.getvalue() == ("load_data: running...\r\033[Kload_data                        success"
                              "                   3.8 s\ntrain[svm]: running...   [0/2 models done]")  # index 1: svm
    printer.close()
    assert out.getvalue().endswith("\r\033[K\n")
