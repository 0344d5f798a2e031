"""Reading /metrics the way Prometheus does: prometheus-client's own text parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.support.clients import Api

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample as {(sample name, labels): value}."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def family_names(text: str) -> set[str]:
    """Every family the exposition describes, with or without samples yet."""
    return {family.name for family in text_string_to_metric_families(text)}


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when the series does not exist yet (a counter never incremented)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


async def scrape(api: Api, token: str | None = None) -> Samples:
    status, text = await api.request("GET", "/metrics", token=token)
    assert status == 200, (status, text)
    return parse(text)


async def scrape_until(api: Api, name: str, expected: float, token: str | None = None, timeout: float = 5.0,
                       **labels: str) -> Samples:
    """Scrape until `name{labels}` reaches `expected` (what the server does after a client's disconnect
    happens after the client returns); the last scrape is returned either way for the asserts."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        samples = await scrape(api, token)
        if value(samples, name, **labels) == expected or loop.time() > deadline:
            return samples
        await asyncio.sleep(0.05)
