"""Local disk and object storage behind pathlib's API, with atomic writes and one atomic folder publish."""
