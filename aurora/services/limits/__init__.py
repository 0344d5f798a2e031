"""One limits mechanism: token buckets per user (per address before there is a user)."""

from aurora.services.limits.addresses import client_address, parse_networks
from aurora.services.limits.buckets import BucketSpec, LocalBuckets, RedisBuckets
from aurora.services.limits.policy import LIMIT_NAMES, LIMIT_OF, PER_ADDRESS, Limiter

__all__ = ["LIMIT_NAMES", "LIMIT_OF", "PER_ADDRESS", "BucketSpec", "Limiter", "LocalBuckets", "RedisBuckets",
           "client_address", "parse_networks"]
