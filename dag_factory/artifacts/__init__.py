"""The files passed between tasks: their names (``layout``), their typed contents (``records``), the champion."""
