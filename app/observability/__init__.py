"""Operating the service: structured logs, Prometheus metrics, and the workers' presence in Redis.

Everything here is read-only towards the service's data: metrics and readiness are computed when
asked, from the database and Redis that every process already shares, so a deployment with several
web processes and workers on several machines reports one consistent truth without extra plumbing.
"""
