"""Celery settings for Flower, the queue dashboard (docker-compose.yml mounts it;
deploy/k8s/base makes a ConfigMap of it).

The `mher/flower` image runs `celery flower` with Celery's default loader, which imports the module
named by CELERY_CONFIG_MODULE (here: celeryconfig, on PYTHONPATH). BELLE's workers put every broker
key under BELLE_KEY_PREFIX (see belle_shared.queue.make_celery); Flower must use the same prefix to
see their queues and to reach them for inspection.
"""

import os

broker_url = os.environ["BELLE_BROKER_URL"]
broker_transport_options = {"global_keyprefix": os.environ.get("BELLE_KEY_PREFIX", "belle") + ":"}
broker_connection_retry_on_startup = True
