"""BELLE datagen service: dataset import, self-instruct generation and their Celery tasks."""
