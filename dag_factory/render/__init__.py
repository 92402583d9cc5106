"""Pages and pictures for people: report.html, the model card, the data profile, the DAG docs, plots, tables.

Templates are Jinja2 (HTML autoescaped); nothing here trains, decides or moves results.
"""
