"""Callsite's settings with channels-redis's pub/sub layer instead of its list-based layer.

``python -m bench.latency --layer redis-pubsub`` runs the server with these settings, to
compare the two Redis layers under the same load. Everything else, ``REDIS_URL`` and the
channel prefix included, is read exactly as in ``callsite.settings``.
"""

from callsite.settings import *  # noqa: F403
from callsite.settings import CHANNEL_LAYERS as _LAYERS

CHANNEL_LAYERS = {
    "default": {
        **_LAYERS["default"],
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {
            "hosts": _LAYERS["default"]["CONFIG"]["hosts"],
            "prefix": _LAYERS["default"]["CONFIG"]["prefix"],
        },
    }
}
