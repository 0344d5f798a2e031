"""The scenarios (S1-S5 of issue 5, S6 of issue 16, S7 of issue 9): their sizes in each mode, and who talks to whom.

A scenario's population is a number of clients (each an account on Aurora, a made-up user on
the relays) and its conversations, each with one sender and its other members, by client index.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

SCENARIOS = ("s1", "s2", "s3", "s4", "s5", "s6", "s7")
TITLES = {
    "s1": "S1 pairs",
    "s2": "S2 fan-out",
    "s3": "S3 idle",
    "s4": "S4 fixed rate",
    "s5": "S5 catch-up",
    "s6": "S6 reconnect storm",
    "s7": "S7 mixed log",
}
# S5 needs storage: the relays keep no history to catch up from.
# S7 edits and reacts: the relays have no such thing.
AURORA_ONLY = {"s5", "s7"}

# Settings every scenario shares (seconds unless named otherwise).
COMMON: dict[str, Any] = {
    "connect_concurrency": 100,
    "connect_timeout_s": 60,
    "ack_timeout_s": 30,
    "drain_timeout_s": 30,
    "settle_ms": 300,
    "body_bytes": 64,
    # Fewer acked (judged) messages than this and a run is inconclusive, a failure (S1, S2, S4, S7).
    "min_judged": 50,
}

FULL: dict[str, Any] = {
    "runs": 3,
    "s1": {"pairs": 50, "inflight": 10, "duration_s": 10.0, "warmup_s": 2.0},
    "s2": {"members": 200, "inflight": 10, "duration_s": 10.0, "warmup_s": 2.0},
    "s3": {"connections": [2000, 10000], "settle_s": 3.0, "connect_concurrency": 200},
    "s4": {"pairs": 50, "rate": 1000.0, "duration_s": 10.0, "warmup_s": 2.0, "max_backlog_s": 2.0},
    "s5": {"clients": 1000, "messages": 100, "group_size": 10, "page": 50, "inflight": 10},
    # S1's load with every 5th operation a change entry (edit, react, unreact) of the sender's last message.
    "s7": {"pairs": 50, "inflight": 10, "duration_s": 10.0, "warmup_s": 2.0, "change_every": 5},
    # Issue 16: every client connected (groups of group_size), the server restarted, all reconnect and sync.
    # Each connect attempt gives up after socket.io-client's default 20 s, as the JS SDK's clients do (a
    # handshake whose last ACK the kernel dropped from a full accept queue otherwise hangs until then).
    "s6": {"clients": 10000, "group_size": 10, "messages": 2, "reconnect_delay_ms": 100, "reconnect_max_ms": 1000,
           "storm_timeout_s": 120, "connect_concurrency": 200, "connect_timeout_s": 20},
}

# Everything once, small and short: well under a minute on 2 cores.
QUICK: dict[str, Any] = {
    "runs": 1,
    "s1": {"pairs": 50, "inflight": 10, "duration_s": 1.0, "warmup_s": 0.5},
    "s2": {"members": 200, "inflight": 10, "duration_s": 1.0, "warmup_s": 0.5},
    "s3": {"connections": [500], "settle_s": 0.5, "connect_concurrency": 200},
    "s4": {"pairs": 50, "rate": 1000.0, "duration_s": 1.0, "warmup_s": 0.5, "max_backlog_s": 2.0},
    "s5": {"clients": 100, "messages": 20, "group_size": 10, "page": 10, "inflight": 10},
    "s7": {"pairs": 50, "inflight": 10, "duration_s": 1.0, "warmup_s": 0.5, "change_every": 5},
    "s6": {"clients": 1000, "group_size": 10, "messages": 2, "reconnect_delay_ms": 100, "reconnect_max_ms": 1000,
           "storm_timeout_s": 60, "connect_concurrency": 200},
}
QUICK_COMMON = {"settle_ms": 200}

# A few seconds, tiny sizes: correctness only (make test runs it so the suite never rots).
SMOKE: dict[str, Any] = {
    "runs": 1,
    "s1": {"pairs": 2, "inflight": 3, "duration_s": 0.3, "warmup_s": 0.1},
    "s2": {"members": 5, "inflight": 3, "duration_s": 0.3, "warmup_s": 0.1},
    "s3": {"connections": [10], "settle_s": 0.2},
    "s4": {"pairs": 2, "rate": 40.0, "duration_s": 0.3, "warmup_s": 0.1, "max_backlog_s": 5.0, "min_judged": 10},
    "s5": {"clients": 6, "messages": 5, "group_size": 3, "page": 2, "inflight": 2},
    "s7": {"pairs": 2, "inflight": 3, "duration_s": 0.3, "warmup_s": 0.1, "change_every": 5},
    "s6": {"clients": 20, "group_size": 5, "messages": 2, "reconnect_delay_ms": 50, "reconnect_max_ms": 500,
           "storm_timeout_s": 30},
}
# min_judged 28: the faulty relays of tests/test_bench_smoke.py break every 7th message, so each
# fault shows at least 4 times (S4's schedule is 16 messages: it needs fewer).
SMOKE_COMMON = {"settle_ms": 100, "drain_timeout_s": 5, "min_judged": 28}

MODES = {"full": FULL, "quick": QUICK, "smoke": SMOKE}


def sizes_for(mode: str) -> dict[str, Any]:
    sizes = copy.deepcopy(MODES[mode])
    common = dict(COMMON, **{"smoke": SMOKE_COMMON, "quick": QUICK_COMMON}.get(mode, {}))
    for name in SCENARIOS:
        sizes[name] = {**common, **sizes[name]}
    return sizes


@dataclass
class ConversationPlan:
    sender: int
    members: list[int]  # every member, the sender included
    title: str | None = None  # None with two members: a direct conversation
    # Members who never connect (not load generator clients), each with this many push subscriptions.
    offline: int = 0
    subscriptions: int = 0


@dataclass
class Population:
    clients: int
    conversations: list[ConversationPlan] = field(default_factory=list)
    push_url: str = ""  # the stand-in push service the subscriptions point at


# `bench/run.py --push-standin`: S1 also runs with one offline member per pair (variant 0: no
# subscription; variant K: K subscriptions at the slow stand-in, so every message is pushed K times).


def population(scenario: str, params: dict[str, Any], variant: int | None = None) -> Population:
    if scenario == "s1" and variant is not None:
        pairs = int(params["pairs"])
        return Population(2 * pairs, [ConversationPlan(2 * i, [2 * i, 2 * i + 1], f"bench push {i}", offline=1,
                                                       subscriptions=int(variant)) for i in range(pairs)],
                          push_url=str(params.get("push_url", "")))
    if scenario in ("s1", "s4", "s7"):
        pairs = int(params["pairs"])
        return Population(2 * pairs, [ConversationPlan(2 * i, [2 * i, 2 * i + 1]) for i in range(pairs)])
    if scenario == "s2":
        members = int(params["members"])
        return Population(members, [ConversationPlan(0, list(range(members)), "bench fan-out")])
    if scenario == "s3":
        assert variant is not None
        return Population(int(variant))
    if scenario == "s6":
        clients, size = int(params["clients"]), int(params["group_size"])
        # Each client in exactly one conversation; its first member sends.
        return Population(clients, [ConversationPlan(start, list(range(start, min(start + size, clients))),
                                                     f"bench storm {start // size}")
                                    for start in range(0, clients, size)])
    if scenario == "s5":
        clients, size = int(params["clients"]), int(params["group_size"])
        groups = []
        # Client 0 is the sender and a member of every group; readers are 1..clients.
        for start in range(1, clients + 1, size):
            readers = list(range(start, min(start + size, clients + 1)))
            groups.append(ConversationPlan(0, [0, *readers], f"bench catch-up {len(groups)}"))
        return Population(clients + 1, groups)
    raise ValueError(f"unknown scenario {scenario}")


def variants(scenario: str, params: dict[str, Any]) -> list[int | None]:
    """S3 runs once per connection count; the others once."""
    if scenario == "s3":
        return [int(n) for n in params["connections"]]
    if scenario == "s1" and params.get("push_subscriptions"):
        return [None, 0, int(params["push_subscriptions"])]
    return [None]


def loadgen_params(scenario: str, params: dict[str, Any], variant: int | None) -> dict[str, Any]:
    """What the load generator needs, with a hard time limit that bounds the whole scenario."""
    out = dict(params)
    out.pop("connections", None)
    out.pop("push_subscriptions", None)
    out.pop("push_url", None)
    if scenario == "s5":
        out.setdefault("inflight", 10)
    budget = 60.0 + float(out.get("warmup_s", 0)) + float(out.get("duration_s", 0))
    budget += 2 * float(out["drain_timeout_s"])
    clients = variant if scenario == "s3" else population(scenario, params).clients
    budget += clients / 50  # connecting, slowly
    if scenario == "s5":
        budget += int(params["clients"]) * int(params["messages"]) / 200
    if scenario == "s6":
        budget += 2 * float(params["storm_timeout_s"])
    out["hard_timeout_s"] = round(budget)
    return out
