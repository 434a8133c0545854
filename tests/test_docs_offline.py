"""The served API docs (/docs, /redoc) work offline: every asset comes from the server itself."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from .live_server import serving

URL_IN_TEXT = re.compile(r"""(?:url\(\s*['"]?|['"])((?:https?:)?//[^'")\s]+)""")
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]+)""")


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_script = tag == "script"
        for name, value in attrs:
            if name in ("src", "href", "spec-url") and value:
                self.refs.append(value)

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def _external(url: str, base: str) -> bool:
    return urlsplit(urljoin(base, url)).netloc != urlsplit(base).netloc


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_page_and_every_asset_it_references_come_from_the_server(tmp_path: Path, page: str) -> None:
    with serving("--store", "sqlite:///audit.db", cwd=tmp_path) as base, httpx.Client(base_url=base) as http:
        html = http.get(page)
        assert html.status_code == 200
        parser = _Refs()
        parser.feed(html.text)
        inline = "\n".join(parser.scripts)
        # What the page's own script loads: the OpenAPI document.
        script_urls = re.findall(r"""['"](/[^'"\s]+\.json)['"]""", inline)
        external = [u for u in parser.refs + URL_IN_TEXT.findall(html.text) if _external(u, base + page)]
        assert external == [], external
        refs = list(dict.fromkeys(parser.refs + script_urls))
        assert "/openapi.json" in refs
        assert any(r.endswith(".js") for r in refs)
        for ref in refs:
            answer = http.get(urljoin(base + page, ref))
            assert answer.status_code == 200, ref
            assert answer.content, ref
            if ref.endswith(".css"):  # a stylesheet may pull fonts or images: local ones only
                loaded = [u for u in CSS_URL.findall(answer.text) if not u.startswith("data:")]
                assert [u for u in loaded if _external(u, base)] == []
