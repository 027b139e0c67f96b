"""The Redis broker transport, with one fix: a lost broker connection must not end the worker.

Found by a fault drill (restart Redis while a job runs) and reproduced with celery 5.7.0 / kombu
5.7.0 (the newest releases): on a lost connection, Celery's consumer collects the broken
connection, which sets the kombu transport's ``client`` to None, then closes it. Closing the Redis
channel restores its unacknowledged messages through a new client, and ``Channel._connparams``
reads ``self.connection.client.hostname``: ``AttributeError: 'NoneType' object has no attribute
'hostname'`` right after "Restoring 1 unacknowledged message(s)". An AttributeError is not one of the
transport's connection errors, so the consumer treats it as unrecoverable and the worker shuts down.
The same happens later when a task that was running across the reconnect finishes and its late
acknowledgement goes to the old channel.

Here a channel whose connection is gone raises the transport's own ConnectionError instead, which
Celery already handles: the close is skipped, the stale acknowledgement is logged ("Couldn't ack"),
and the worker reconnects with its backoff. Nothing is lost: the unacknowledged message stays in
Redis's unacked set and is redelivered after the visibility timeout, where the job's claim makes the
second delivery a no-op (and the reconciler covers a broker that lost its data).

Selected with ``CELERY_BROKER_TRANSPORT = "portal.broker:Transport"`` for ``redis://`` URLs.
"""

from kombu.transport import redis as kombu_redis
from redis import exceptions as redis_exceptions


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous=False):
        if self.connection.client is None:
            raise redis_exceptions.ConnectionError("This broker channel belongs to a connection that was closed.")
        return super()._connparams(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):
    Channel = Channel
