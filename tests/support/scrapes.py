"""Prometheus scrapes read as Prometheus reads them, with prometheus-client's own parser."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
"""Every sample of a scrape: (name, labels) -> value."""


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(url: str, *, content_type: str | None = None) -> Samples:
    """GET `url`, which must answer 200 (and, if given, with a content type starting `content_type`)."""
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    if content_type is not None:
        assert response.headers["content-type"].startswith(content_type)
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value; 0.0 when it is absent (a counter not yet incremented)."""
    return samples.get((name, frozenset(labels.items())), 0.0)
