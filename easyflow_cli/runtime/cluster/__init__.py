"""Running easyflow across machines: the Celery engine that carries dispatched runs to remote
workers (`engine.py`), the coordinator's dispatch and the `easyflow worker` process. Imported
only when a `[cluster]` is configured: Celery and psycopg are the `cluster` extra."""
