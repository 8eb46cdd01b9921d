"""Observability: JSON logs with secrets redacted, and Prometheus metrics."""
