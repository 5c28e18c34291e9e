"""Prometheus metrics: process-wide counters plus job counts read from the app's database at scrape time."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from belle_shared.db.models import Job

# Counters are per process (registry=None keeps them out of the global default registry); each app
# exposes them through its own registry, made in make_registry.
JOBS_SUBMITTED = Counter("belle_jobs_submitted_total", "Jobs accepted by the gateway.", ["type"], registry=None)
HTTP_REQUESTS = Counter("belle_http_requests_total", "HTTP requests.", ["method", "route", "status"], registry=None)
HTTP_LATENCY = Histogram("belle_http_request_seconds", "HTTP request latency.", ["method", "route"], registry=None)


class JobStatusCollector:
    """Jobs per type and status, read from the database at scrape time."""

    def __init__(self, session_factory):
        self.session_factory = session_factory

    def collect(self):
        gauge = GaugeMetricFamily("belle_jobs", "Jobs by type and status.", labels=["type", "status"])
        with self.session_factory() as session:
            for job_type, status, count in session.execute(
                select(Job.type, Job.status, func.count()).group_by(Job.type, Job.status)
            ):
                gauge.add_metric([job_type, status], count)
        yield gauge


def make_registry(session_factory) -> CollectorRegistry:
    registry = CollectorRegistry()
    for metric in (JOBS_SUBMITTED, HTTP_REQUESTS, HTTP_LATENCY):
        registry.register(metric)
    registry.register(JobStatusCollector(session_factory))
    return registry
