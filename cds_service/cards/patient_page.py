"""GET /patient-info: a printable page for the patient, in Dutch or English, for an age.

The URL carries nothing about the patient but an age in years; the page loads no external
resources (styles are inline) so it prints and works offline.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, request
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from cds_service.cards.catalogue import (
    LANGUAGES,
    VARIANTS,
    Catalogue,
    apply_variant,
    decade_of,
    patient_variables,
)
from cds_service.errors import InvalidRequest
from cds_service.runtime import runtime

bp = Blueprint("patient_page", __name__)
TEMPLATES = Path(__file__).resolve().parent / "templates"
PARAMETERS = ("lang", "age", "topic")
MAX_AGE = 130
_HTML = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
)


def _blocks(text: str) -> list[dict[str, Any]]:
    """Plain text to blocks: blank lines split paragraphs, '- ' lines become list items."""
    blocks: list[dict[str, Any]] = []
    for chunk in re.split(r"\n\s*\n", text.strip()):
        paragraph: list[str] = []
        for line in chunk.splitlines():
            line = line.strip()
            if line.startswith("- "):
                if paragraph:
                    blocks.append({"kind": "p", "text": " ".join(paragraph)})
                    paragraph = []
                if not blocks or blocks[-1]["kind"] != "ul":
                    blocks.append({"kind": "ul", "items": []})
                blocks[-1]["items"].append(line[2:])
            elif line:
                paragraph.append(line)
        if paragraph:
            blocks.append({"kind": "p", "text": " ".join(paragraph)})
    return blocks


# The icon array: 100 people in rows of ten, drawn inline (nothing is loaded from elsewhere).
ICONS_PER_ROW = 10
ICON_SIZE = 22  # px per person, in the SVG's own units


def icon_array(catalogue: Catalogue, language: str, age: int | None) -> dict[str, Any] | None:
    """The age figure as 100 figures: its count, its text alternative and each figure's place."""
    shares = catalogue.age_figures.get("discs")
    if age is None or age < 0 or not shares:
        return None
    decade = decade_of(age)
    count = shares[decade]
    group = catalogue.common["age_group"][language].render(age=age, decade=decade).strip()
    label = catalogue.patient_page["icon_array"][language].render(discs=count, age_group=group)
    people = [
        {
            "x": (i % ICONS_PER_ROW) * ICON_SIZE,
            "y": (i // ICONS_PER_ROW) * ICON_SIZE,
            "on": i < count,
        }
        for i in range(100)
    ]
    return {"count": count, "label": label.strip(), "people": people, "size": ICON_SIZE}


def render_patient_page(
    catalogue: Catalogue,
    language: str,
    topic: str,
    age: int | None,
    variant: str | None = None,
) -> str:
    """The HTML page for a language, topic and (optional) age."""
    page = catalogue.patient_page
    content = page["topics"][topic]
    variables = patient_variables(catalogue, language, age, variant)

    def text(template: Any) -> str:
        rendered = template[language].render(variables).strip()
        return apply_variant(rendered, catalogue, language, variant)

    sections = [
        {"heading": text(s["heading"]), "blocks": _blocks(text(s["body"]))}
        for s in content["sections"]
    ]
    html_lang = variant if variant and variant.split("-")[0] == language else language
    return _HTML.get_template("patient-page.html").render(
        lang=html_lang,
        site=text(page["page_title"]),
        title=text(content["title"]),
        sections=sections,
        icons=icon_array(catalogue, language, age),
        more_info=text(page["more_info"]),
        more_info_url=page["more_info_url"][language].render().strip(),
        footer=text(page["footer"]),
    )


def parse_parameters(
    args: Mapping[str, str], catalogue: Catalogue, default_language: str
) -> tuple[str, str | None, str, int | None]:
    """(language, variant, topic, age) from the query, or InvalidRequest naming the parameter."""
    unknown = sorted(set(args) - set(PARAMETERS))
    if unknown:
        raise InvalidRequest(
            f"unknown query parameter '{unknown[0][:40]}'; allowed: {', '.join(PARAMETERS)}",
            expression=unknown[0][:40],
        )
    lang = args.get("lang", default_language)
    variant = None
    if lang in VARIANTS:
        variant, lang = lang, lang.split("-")[0]
    if lang not in LANGUAGES:
        raise InvalidRequest(
            f"lang must be one of {', '.join((*LANGUAGES, *VARIANTS))}", expression="lang"
        )
    topics = catalogue.topics()
    topic = args.get("topic", topics[0])
    if topic not in topics:
        raise InvalidRequest(f"topic must be one of {', '.join(topics)}", expression="topic")
    age: int | None = None
    raw_age = args.get("age")
    if raw_age is not None:
        if not re.fullmatch(r"\d{1,3}", raw_age) or int(raw_age) > MAX_AGE:
            raise InvalidRequest(
                f"age must be a whole number of years from 0 to {MAX_AGE}", expression="age"
            )
        age = int(raw_age)
    return lang, variant, topic, age


@bp.get("/patient-info")
def patient_info() -> Response:
    """The printable patient page; 400 with an OperationOutcome for bad parameters."""
    state = runtime()
    language, variant, topic, age = parse_parameters(
        request.args, state.catalogue, state.settings.default_language
    )
    html = render_patient_page(state.catalogue, language, topic, age, variant)
    response = Response(html, mimetype="text/html")
    response.headers["Cache-Control"] = "public, max-age=3600"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    )
    return response
