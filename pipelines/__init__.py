"""dlt pipelines, the run orchestration, the CLI and reports."""
