"""The learner's own corner of the stack, for the "build it" exercises: topics named `mine-…`, catalog
collections named `mine_…`, objects under `mine/` in the live bucket. A learner's broken code there cannot
break the shared pipeline or the next lesson; `lab sandbox reset` (or `sandbox.reset()`) deletes all of it.
"""

from __future__ import annotations

import secrets

TOPIC_PREFIX = "mine-"
COLLECTION_PREFIX = "mine_"
OBJECT_PREFIX = "mine/"


def topic(what: str, partitions: int) -> str:
    """A new topic of the learner's own, `mine-{what}-{random}`."""
    from lab import topics

    return topics.create_scratch_topic(f"{TOPIC_PREFIX}{what}-", partitions)


def collection_name(what: str) -> str:
    return f"{COLLECTION_PREFIX}{what}_{secrets.token_hex(3)}"


def reset() -> list[str]:
    """Delete every topic, collection and object of the sandbox; returns what was deleted."""
    from lab import catalog, storage, topics
    from lab.config import settings

    gone = []
    admin = topics.admin(quiet=True)
    mine = [t for t in admin.list_topics(timeout=30).topics if t.startswith(TOPIC_PREFIX)]
    if mine:
        for name, future in admin.delete_topics(mine, request_timeout=30).items():
            future.result()
            gone.append(f"topic {name}")
    for name in catalog.db().list_collection_names():
        if name.startswith(COLLECTION_PREFIX):
            catalog.db().drop_collection(name)
            gone.append(f"collection {name}")
    keys = storage.list_keys(settings.bucket_live, OBJECT_PREFIX)
    if keys:
        storage.delete_prefix(settings.bucket_live, OBJECT_PREFIX)
        gone.append(f"{len(keys)} object(s) under {settings.bucket_live}/{OBJECT_PREFIX}")
    return gone
