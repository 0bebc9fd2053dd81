"""An HTML report as a reader gets it, for the report tests: each section's text, each table's
rows, every link and source, the hover titles of each chart."""

from __future__ import annotations

from html.parser import HTMLParser


class Parsed(HTMLParser):
    """The page as a reader gets it: each section's text, each table's rows of cell texts,
    every link and source, and the titles laid over the charts."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: dict[str, list[str]] = {}
        self.order: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.refs: list[str] = []
        self.tags: set[str] = set()
        self.hover_titles: dict[str, list[str]] = {}
        self._section = ""
        self._chart = ""
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._skip = 0
        self._in_hover = False
        self._title: list[str] | None = None
        self.feed(text)

    BLOCKS = frozenset("p div span li ul tr td th h1 h2 h3 section table details summary "
                       "figure figcaption pre".split())

    def _gap(self, tag: str) -> None:
        if tag in self.BLOCKS and self._section and not self._skip:
            self.sections[self._section].append(" ")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._gap(tag)
        a = dict(attrs)
        self.tags.add(tag)
        for key in ("href", "src", "xlink:href"):
            if a.get(key):
                self.refs.append(str(a[key]))
        if tag == "section" and a.get("id"):
            self._section = str(a["id"])
            self.order.append(self._section)
            self.sections[self._section] = []
        elif tag == "svg":
            self._chart = str(a.get("aria-label"))
            self._skip += 1
        elif tag == "g" and a.get("class") == "hover":
            self._in_hover = True
            self.hover_titles[self._chart] = []
        elif tag == "title" and self._in_hover:
            self._title = []
        elif tag == "style":
            self._skip += 1
        elif tag == "tr":
            self._row = []
            self.tables.setdefault(self._section, []).append(self._row)
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        self._gap(tag)
        if tag in ("svg", "style"):
            self._skip -= 1
            self._in_hover = False if tag == "svg" else self._in_hover
        elif tag == "title" and self._title is not None:
            self.hover_titles[self._chart].append("".join(self._title))
            self._title = None
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._title is not None:
            self._title.append(data)
        if self._skip:
            return
        if self._cell is not None:
            self._cell.append(data)
        if self._section:
            self.sections[self._section].append(data)

    def text(self, section: str) -> str:
        return " ".join("".join(self.sections[section]).split())
