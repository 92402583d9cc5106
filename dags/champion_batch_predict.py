"""Example consumer: score a file of new rows each time breast_cancer promotes a new champion.

Scheduled on the Asset ``best_model_breast_cancer``, which the experiment's promote task
announces only when a better model replaced the champion. Reads
``<results>/incoming/breast_cancer.csv`` and writes ``<results>/predictions/breast_cancer/<run id>.csv``.
Parsing stays cheap: pandas and the model load inside the task.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG, Asset, Param, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

from dag_factory.airflow.dag import champion_asset_name
from dag_factory.artifacts.layout import safe_run_id
from dag_factory.project import Project

EXPERIMENT = "breast_cancer"
PROJECT = Project.locate(Path(__file__).resolve().parents[1])
CHAMPION = Asset(champion_asset_name(EXPERIMENT))

with DAG(
    dag_id=f"champion_batch_predict_{EXPERIMENT}",
    description=f"Score new rows with each new champion of {EXPERIMENT}",
    doc_md=__doc__,
    schedule=CHAMPION,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["batch-prediction", "example"],
    params={"input": Param(f"incoming/{EXPERIMENT}.csv", type="string",
                           description="CSV of new rows; a relative path is under the results folder.")},
):

    @task
    def predict_new_rows() -> str:
        """Score the input file with the current champion; skip when there is no file.

        That is the champion the triggering event announced, unless an even newer one was promoted since.
        """
        from dag_factory.steps.predict import predict_file

        context = get_current_context()
        for event in context["triggering_asset_events"].get(CHAMPION, []):
            print(f"New champion: {event.extra.get('winner')} {event.extra.get('metric')}="
                  f"{event.extra.get('score')} from run {event.extra.get('run_id')}")
        results = PROJECT.results_for(PROJECT.experiment(EXPERIMENT))
        rows = results / context["params"]["input"]
        if not rows.exists():
            raise AirflowSkipException(f"no new rows to score: {rows} does not exist")
        output = results / "predictions" / EXPERIMENT / f"{safe_run_id(context['run_id'])}.csv"
        return str(predict_file(results, EXPERIMENT, rows, output).path)

    predict_new_rows()
