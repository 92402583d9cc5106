"""Experiment specs and the model catalog: YAML in, validated pydantic objects (or precise errors) out."""
