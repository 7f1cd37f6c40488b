"""Every item kind of the app's one table, and where it lives: the one place that names the keys.

Almost everything belongs to a portal and lives in its partition (``pk=PORTAL#member_id``), so an
uninstall with CLEAN deletes a portal by deleting one partition, and nothing of one portal can be read
through another's key. The few items that are not a portal's have partitions of their own. gsi1 is the
table's one index: a partition per kind of work (``gsi1pk``), sorted by when it is due (``gsi1sk``).
docs/architecture.md has the same table for readers.
"""

from __future__ import annotations

# ---------------------------------------------------------------- a portal's partition: sort keys
PORTAL_SK = "PORTAL"  # the portal record (portals/store.py)
DELIVERY_SK = "DELIVERY"  # how its events reach the app (delivery/store.py)
HISTORY_PREFIX = "CAPHIST#"  # CAPHIST#time#n: a change of what it has (capabilities/store.py)
RECHECK_SK = "RECHECK"  # when its next capability check is due
REFRESH_LEASE_SK = "LEASE#refresh"  # at most one refresh of its tokens at a time (tokens/lease.py)
PULL_LEASE_SK = "LEASE#pull"  # at most one pull of its offline queue at a time
RATE_SK = "RATE"  # its REST budget, shared by every worker (worker/limiter.py)
READ_PREFIX = "READ#"  # READ#method#id: the portal time an object was last read (worker/read_marks.py)
SEEN_PREFIX = "SEEN#"  # SEEN#kind#id: the newest change of an object the worker got (worker/seen_marks.py)
AUDIT_SK = "AUDIT"  # the change audit's cursors per kind of object (delivery/audit_store.py)
IDS_PREFIX = "IDS#"  # IDS#kind#shard: IDs of a kind the audit knows, by range (delivery/known_ids.py)
WEBHOOK_SK = "WEBHOOK"  # an incoming-webhook connection (portals/webhook_store.py)
HEALTH_SK = "HEALTH"  # when its events were last received and processed (worker/health.py)
APP_PREFIX = "APP#"  # APP#key: the app's own data, ctx.storage (portals/app_data.py)
DIRECTORY_SK = "DIRECTORY"  # its entry in the portal directory, by domain (portals/directory.py)

# ---------------------------------------------------------------- partitions of their own
SWEEP_LEASE_PK = "SWEEP"  # with sk=LEASE#sweep: one keep-alive sweep at a time
SWEEP_LEASE_SK = "LEASE#sweep"
IDEMPOTENCY_PK = "IDEMPOTENCY#event_worker"  # the worker's once-per-event guard (worker/guard_ledger.py)
ROLLOUT_PK = "MANIFEST"  # with sk=ROLLOUT: how far a changed manifest's re-check of every portal got
ROLLOUT_SK = "ROLLOUT"
#: The guard records spread over this many partitions (IDEMPOTENCY#event_worker#NN, chosen by a hash of
#: the event), so a storm's writes are never throttled on one hot partition key.
IDEMPOTENCY_SHARDS = 64

# ---------------------------------------------------------------- gsi1 partitions (kinds of work)
REFRESH_INDEX_PK = "REFRESH"  # portals with a live refresh token, by keep-alive due time
RECHECK_INDEX_PK = "RECHECK"  # portals by capability re-check due time
PULL_PARTITION = "DELIVERY#pull"  # portals whose offline queue is pulled, by next pull
ONLINE_PARTITION = "DELIVERY#online"  # portals delivered online, by next probe
AUDIT_PARTITION = "DELIVERY#audit"  # portals by when their change audit is next due
DIRECTORY_PARTITION = "PORTALS"  # every portal by domain: the operator's listing (portals/directory.py)


def idempotency_pk(shard: int) -> str:
    return f"{IDEMPOTENCY_PK}#{shard % IDEMPOTENCY_SHARDS:02d}"


def portal_pk(member_id: str) -> str:
    return f"PORTAL#{member_id}"


def read_sk(method: str, object_id: str) -> str:
    return f"{READ_PREFIX}{method}#{object_id}"


def seen_sk(kind: str, object_id: int) -> str:
    return f"{SEEN_PREFIX}{kind}#{object_id}"


def ids_sk(kind: str, shard: int) -> str:
    return f"{IDS_PREFIX}{kind}#{shard:08d}"
