"""The metered template sandbox: each way a template can grow a value or repeat
work is refused before it costs anything, and ordinary templates still render."""

from __future__ import annotations

import time

import pytest

from runner.plan.render import Collector, Renderer

CTX = {"big": "x" * 1_000_000, "n": 5, "names": ["a", "b"]}

REFUSED = {
    "{{ 'x' * 200000000 }}": "the repeated value would be over 1 MiB",
    "{{ [big] * 2 }}": "the repeated value would be over 1 MiB",
    "{{ big ~ big }}": "would be over 1 MiB",
    "{{ big + big }}": "the sum would be over 1 MiB",
    "{{ 2 ** 100000 }}": "a power past 4096 bits",
    "{{ (2 ** 3000) * (2 ** 3000) }}": "a product past 4096 bits",
    "{{ '%999999999d' % 1 }}": "the formatted text would be over 1 MiB",
    "{{ '{:>999999999}'.format(1) }}": "the formatted text would be over 1 MiB",
    "{{ 'x'.center(999999999) }}": "str.center's result would be over 1 MiB",
    "{{ 'x'.zfill(999999999) }}": "str.zfill's result would be over 1 MiB",
    "{{ big.replace('x', 'yy') }}": "str.replace's result would be over 1 MiB",
    "{{ 'x'|center(999999999) }}": "the center filter's result would be over 1 MiB",
    "{{ big|replace('x', big) }}": "the replace filter's result would be over 1 MiB",
    "{{ big|indent(1000000) }}": "would be over 1 MiB",
    "{{ big|wordwrap(1, wrapstring='\\n' * 10) }}": "the wordwrap filter's result",
    "{{ names|tojson(indent=1000000) }}": "the tojson filter's result",
    "{{ range(10)|batch(999999999, 'x')|list }}": "the batch filter's result",
    "{{ range(10000)|map('center', 1000000)|join }}": "the items drawn from an iterator",
    "{{ lipsum(100000) }}": "lipsum's text would be over 1 MiB",
    "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}":
        "past 10,000 iterations",
    "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}":
        "past 10,000 iterations and calls",
    "{% for i in range(9000) %}{{ big[:1000] }}{% endfor %}": "the text the template writes",
    "{% for i in range(9000) %}" + "y" * 200 + "{% endfor %}": "the template's output",
    "{% set a = [big, big] %}{{ a|length }}": "a value would be over 1 MiB",
    "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}": "recurses too deep",
}


@pytest.mark.parametrize("source", list(REFUSED), ids=range(len(REFUSED)))
def test_refused_at_once(source: str) -> None:
    out = Collector()
    start = time.process_time()
    Renderer().render(source, CTX, out)
    assert time.process_time() - start < 1.0
    assert out.errors, f"{source!r} rendered"
    assert REFUSED[source] in out.errors[0][1]


@pytest.mark.parametrize(("source", "expected"), [
    ("{{ n * 2 }}", 10),
    ("{{ names|join(',') }}", "a,b"),
    ("{% for x in names %}{{ x }}-{{ loop.index }} {% endfor %}", "a-1 b-2 "),
    ("{{ 'nginx:%s' % '1.26.1' }}", "nginx:1.26.1"),
    ("{{ '{}:{}'.format('nginx', n) }}", "nginx:5"),
    ("{{ range(3)|map('string')|join('-') }}", "0-1-2"),
    ("{{ big|length }}", 1_000_000),
    ("{{ [1, 2] + [3] }}", [1, 2, 3]),
    ("{{ 'web-%02d'|format(n) }}", "web-05"),
    ("{{ (names * 3)|length }}", 6),
])
def test_ordinary_templates_still_render(source: str, expected: object) -> None:
    out = Collector()
    assert Renderer().render(source, CTX, out) == expected
    assert not out.errors
