"""The report's words in Dutch and English: headings, table labels, charts and definitions.

The JSON keeps its keys whatever the language (a program reads them); only what a person
reads is translated. Every text has both languages (tests/unit/test_report_translations.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from cds_service.audit.models import MISSED_ALARM_DAYS
from cds_service.audit.reports.figures import (
    DEFINITIONS,
    HEDIS_DAYS,
    REORDER_DAYS,
    URGENT_FOLLOW_UP_HOURS,
)
from cds_service.audit.reports.locale import LANGUAGES

MIN_PEERS = 5  # fewer peers than this and the mirror report shows no peer figures

TEXT: dict[str, dict[str, str]] = {
    "title": {"nl": "Vermeden lumbale beeldvorming", "en": "Avoided lumbar imaging"},
    "to": {"nl": "tot en met", "en": "to"},
    "language": {"nl": "Nederlands", "en": "English"},
    "h.avoided": {"nl": "Vermeden scans", "en": "Scans avoided"},
    "h.versus_previous": {
        "nl": "Vergeleken met de periode ervoor",
        "en": "Compared with the period before",
    },
    "h.by_month_change": {"nl": "Per maand, met verschil", "en": "Per month, with change"},
    "h.by_organisation_change": {
        "nl": "Per organisatie, met verschil",
        "en": "Per organisation, with change",
    },
    "h.mix": {
        "nl": "Beoordeelde aanvragen per modaliteit en beslissing",
        "en": "Orders evaluated by modality and decision",
    },
    "h.monthly": {"nl": "Verloop per maand", "en": "Monthly trend"},
    "h.reasons": {
        "nl": "Redenen om af te wijken (kaarten ‘niet geïndiceerd’)",
        "en": "Override reasons (not-indicated cards)",
    },
    "h.measure28": {
        "nl": "28-dagenmaat (in de geest van HEDIS LBP)",
        "en": "28-day measure (in the spirit of HEDIS LBP)",
    },
    "h.urgent": {
        "nl": "Spoedbeslissingen en opvolging",
        "en": "Urgent decisions and follow-through",
    },
    "h.modes": {"nl": "Stille pilot en live vergeleken", "en": "Silent pilot and live compared"},
    "h.watch": {
        "nl": "Bewaking gemiste alarmsignalen (voor klinische beoordeling)",
        "en": "Missed-alarm watch (for clinical review)",
    },
    "h.resources": {
        "nl": "Geschatte vermeden kosten en straling (netto)",
        "en": "Estimated cost and radiation avoided (net)",
    },
    "h.by": {"nl": "Per", "en": "By"},
    "h.clinicians": {"nl": "Per arts (pseudoniem)", "en": "Per clinician (pseudonymous)"},
    "h.definitions": {"nl": "Definities", "en": "Definitions"},
    "col.figure": {"nl": "cijfer", "en": "figure"},
    "col.value": {"nl": "waarde", "en": "value"},
    "col.orders": {"nl": "aanvragen", "en": "orders"},
    "col.modality": {"nl": "modaliteit", "en": "modality"},
    "col.total": {"nl": "totaal", "en": "total"},
    "col.all": {"nl": "alle", "en": "all"},
    "col.month": {"nl": "maand", "en": "month"},
    "col.code": {"nl": "code", "en": "code"},
    "col.system": {"nl": "systeem", "en": "system"},
    "col.overrides": {"nl": "afwijkingen", "en": "overrides"},
    "col.share": {"nl": "aandeel", "en": "share"},
    "col.this_period": {"nl": "deze periode", "en": "this period"},
    "col.previous_period": {"nl": "periode ervoor", "en": "period before"},
    "col.change": {"nl": "verschil", "en": "change"},
    "col.change_month": {"nl": "verschil met maand ervoor", "en": "change on month before"},
    "col.organisation": {"nl": "organisatie", "en": "organisation"},
    "col.clinician": {"nl": "arts", "en": "clinician"},
    "col.month_by": {"nl": "maand", "en": "month"},
    "col.episodes": {"nl": "episodes", "en": "episodes"},
    "col.without_imaging": {
        "nl": "zonder beeldvorming binnen 28 dagen",
        "en": "without imaging within 28 days",
    },
    "col.rate": {"nl": "percentage", "en": "rate"},
    "col.urgent": {"nl": "spoed", "en": "urgent"},
    "col.followed": {"nl": "opgevolgd (24 uur)", "en": "followed through (24 h)"},
    "col.accepted": {"nl": "geaccepteerd", "en": "accepted"},
    "col.net_avoided": {"nl": "netto vermeden", "en": "net avoided"},
    "col.tariff": {"nl": "tarief", "en": "tariff"},
    "col.cost": {"nl": "kosten", "en": "cost"},
    "col.msv_exam": {"nl": "mSv per onderzoek", "en": "mSv per exam"},
    "col.msv": {"nl": "mSv", "en": "mSv"},
    "col.shadow": {"nl": "schaduw (stille pilot)", "en": "shadow (silent pilot)"},
    "col.live": {"nl": "live", "en": "live"},
    "col.patient": {"nl": "patiënt (pseudoniem)", "en": "patient (pseudonym)"},
    "col.earlier": {"nl": "eerder", "en": "earlier"},
    "col.decision": {"nl": "beslissing", "en": "decision"},
    "col.mode": {"nl": "modus", "en": "mode"},
    "col.rule_set": {"nl": "regelset", "en": "rule set"},
    "col.criteria": {"nl": "criteria voldaan", "en": "criteria met"},
    "col.days_later": {"nl": "dagen later", "en": "days later"},
    "col.consults": {"nl": "consult-id’s (eerder, spoed)", "en": "consult ids (earlier, urgent)"},
    "figure.evaluations": {"nl": "beoordelingen", "en": "evaluations"},
    "figure.not_indicated": {"nl": "niet geïndiceerd", "en": "not indicated"},
    "figure.not_indicated_share": {"nl": "aandeel niet geïndiceerd", "en": "share not indicated"},
    "figure.cancelled": {"nl": "– geannuleerd via suggestie", "en": "– cancelled via suggestion"},
    "figure.replaced": {"nl": "– vervangen via suggestie", "en": "– replaced via suggestion"},
    "figure.avoided": {"nl": "vermeden scans", "en": "scans avoided"},
    "figure.avoided_share": {
        "nl": "aandeel vermeden (van niet geïndiceerd)",
        "en": "share avoided (of not indicated)",
    },
    "figure.reordered": {
        "nl": f"– opnieuw aangevraagd binnen {REORDER_DAYS} dagen",
        "en": f"– re-ordered within {REORDER_DAYS} days",
    },
    "figure.net_avoided": {"nl": "netto vermeden", "en": "net avoided"},
    "figure.accepted_other": {
        "nl": "– andere suggestie geaccepteerd",
        "en": "– accepted another suggestion",
    },
    "figure.overridden": {"nl": "– afgeweken", "en": "– overridden"},
    "figure.no_response": {"nl": "– geen reactie", "en": "– no response"},
    "figure.overridden_share": {
        "nl": "aandeel afgeweken (van niet geïndiceerd)",
        "en": "share overridden (of not indicated)",
    },
    "figure.overridden_plain": {"nl": "afgeweken", "en": "overridden"},
    "figure.no_response_plain": {"nl": "geen reactie", "en": "no response"},
    "figure.cards": {"nl": "kaarten", "en": "cards"},
    "figure.first_day": {"nl": "eerste dag", "en": "first day"},
    "figure.last_day": {"nl": "laatste dag", "en": "last day"},
    "figure.days": {"nl": "dagen", "en": "days"},
    "figure.signed": {
        "nl": "ondertekende aanvragen lumbale beeldvorming",
        "en": "signed lumbar imaging orders",
    },
    "figure.signed_per_day": {
        "nl": "ondertekende aanvragen per dag",
        "en": "signed orders per day",
    },
    "figure.m28_episodes": {"nl": "28-dagenmaat: episodes", "en": "28-day measure: episodes"},
    "figure.m28_without": {
        "nl": "28-dagenmaat: zonder beeldvorming",
        "en": "28-day measure: without imaging",
    },
    "figure.m28_rate": {"nl": "28-dagenmaat: percentage", "en": "28-day measure: rate"},
    "cards.shown": {"nl": "getoond", "en": "shown"},
    "cards.not_shown": {"nl": "niet getoond (stille pilot)", "en": "not shown (silent pilot)"},
    "modes.shadow": {
        "nl": "Schaduw: de stille pilot (<code>CDS_MODE=shadow</code>), aanvragen beoordeeld en "
        "vastgelegd maar zonder kaart",
        "en": "Shadow: the silent pilot (<code>CDS_MODE=shadow</code>), orders judged and "
        "audited but no card shown",
    },
    "modes.live": {"nl": "Live: kaarten getoond", "en": "Live: cards shown"},
    "modes.none": {"nl": "geen beoordeling in deze periode", "en": "no evaluation in this period"},
    "previous.none": {
        "nl": "Geen beoordelingen in de periode ervoor: er is niets om mee te vergelijken.",
        "en": "No evaluations in the period before: there is nothing to compare with.",
    },
    "previous.intro": {
        "nl": "De periode ervoor telt evenveel dagen en eindigt de dag voor deze begint",
        "en": "The period before has as many days and ends the day before this one starts",
    },
    "watch.intro": {
        "nl": "Beoordelingen ‘niet geïndiceerd’ of ‘onvoldoende gegevens’ in de periode, binnen "
        "{days} dagen gevolgd door een spoedbeoordeling van dezelfde patiënt",
        "en": "Not-indicated or insufficient-data evaluations in the period followed within "
        "{days} days by an urgent evaluation of the same patient",
    },
    "watch.patients": {"nl": "patiënten", "en": "patients"},
    "source.rollups": {
        "nl": "Uit de rollups van {at} (beoordelingen tot en met id {upto}); wat daarna is "
        "opgeslagen telt mee na de volgende",
        "en": "From the rollups as of {at} (evaluations up to id {upto}); rows stored since then "
        "count after the next",
    },
    "source.raw": {
        "nl": "Uit alle beoordelingen zelf (nog geen rollup-verversing gedraaid, of zo gevraagd).",
        "en": "From every evaluation row (no rollup refresh has run, or the raw rows were asked "
        "for).",
    },
    "watch.page": {
        "nl": "Getoond: {first} tot en met {last} van {total}",
        "en": "Listed: {first} to {last} of {total}",
    },
    "watch.page_next": {"nl": "de volgende met", "en": "the next ones with"},
    "decision.urgent": {"nl": "spoed", "en": "urgent"},
    "decision.indicated": {"nl": "geïndiceerd", "en": "indicated"},
    "decision.not-indicated": {"nl": "niet geïndiceerd", "en": "not indicated"},
    "decision.insufficient-data": {"nl": "onvoldoende gegevens", "en": "insufficient data"},
    "decision.out-of-population": {"nl": "buiten doelgroep", "en": "out of population"},
    "modality.xray": {"nl": "röntgen", "en": "X-ray"},
    "modality.ct": {"nl": "CT", "en": "CT"},
    "modality.mri": {"nl": "MRI", "en": "MRI"},
    "mode.live": {"nl": "live", "en": "live"},
    "mode.shadow": {"nl": "schaduw", "en": "shadow"},
    "chart.no_data": {"nl": "geen gegevens in deze periode", "en": "no data in this period"},
    "chart.trend": {"nl": "Verloop per maand", "en": "Monthly trend"},
    "chart.mix": {"nl": "Beslissingen per modaliteit", "en": "Decision mix by modality"},
    "chart.reasons": {
        "nl": "Redenen om af te wijken (kaarten ‘niet geïndiceerd’)",
        "en": "Override reasons (not-indicated cards)",
    },
    "chart.mirror": {
        "nl": "Uw cijfers naast die van uw collega’s",
        "en": "Your figures beside your peers’",
    },
    # The mirror report (spiegelinformatie)
    "mirror.title": {"nl": "Spiegelinformatie", "en": "Mirror report"},
    "mirror.for": {"nl": "voor arts", "en": "for clinician"},
    "mirror.organisation": {"nl": "Organisatie", "en": "Organisation"},
    "mirror.intro": {
        "nl": "Uw eigen cijfers naast de mediaan en de interkwartielafstand (25e tot 75e "
        "percentiel) van de andere artsen in uw organisatie in dezelfde periode. Geen collega "
        "is herkenbaar: van hen staan alleen deze samenvattingen hier.",
        "en": "Your own figures beside the median and interquartile range (25th to 75th "
        "percentile) of the other clinicians in your organisation over the same period. No "
        "colleague can be identified: only these summaries of their figures are shown.",
    },
    "mirror.own": {"nl": "u", "en": "you"},
    "mirror.count": {"nl": "aantal", "en": "count"},
    "mirror.median": {"nl": "mediaan collega’s", "en": "peers’ median"},
    "mirror.iqr": {"nl": "interkwartielafstand collega’s", "en": "peers’ interquartile range"},
    "mirror.peers": {"nl": "collega’s", "en": "peers"},
    "mirror.peer_count": {
        "nl": "Andere artsen in uw organisatie met beoordelingen in deze periode",
        "en": "Other clinicians in your organisation with evaluations in this period",
    },
    "mirror.too_few_peers": {
        "nl": "Geen cijfers van collega’s: er zijn er {peers}, minder dan {minimum}. Met zo "
        "weinig collega’s zou hun mediaan de cijfers van een herkenbare collega kunnen tonen.",
        "en": "No peer figures: there are {peers} peers, fewer than {minimum}. With so few, "
        "their median could show the figures of a colleague who can be recognised.",
    },
    "mirror.too_few_for_figure": {
        "nl": "minder dan {minimum} collega’s met dit cijfer",
        "en": "fewer than {minimum} peers with this figure",
    },
    "mirror.no_evaluations": {
        "nl": "Geen beoordelingen van deze arts in deze periode.",
        "en": "No evaluations by this clinician in this period.",
    },
    "mirror.legend.own": {"nl": "u", "en": "you"},
    "mirror.legend.band": {
        "nl": "collega’s: 25e–75e percentiel, streep = mediaan",
        "en": "peers: 25th–75th percentile, line = median",
    },
    "mirror.measure28": {
        "nl": "28-dagenmaat (zonder beeldvorming)",
        "en": "28-day measure (without imaging)",
    },
    "mirror.override_reason": {"nl": "afgeweken, reden", "en": "overridden, reason"},
    "mirror.label_note": {
        "nl": "Uw label is een korte vorm van uw pseudoniem; alleen uw organisatie kan het met "
        "haar eigen sleutel terugleiden naar u (cds-service label --clinician-id …).",
        "en": "Your label is a short form of your pseudonym; only your organisation can trace "
        "it back to you, with its own key (cds-service label --clinician-id …).",
    },
}

DEFINITIONS_NL = {
    "evaluation": "Eén aanvraag voor lumbale beeldvorming (röntgen, CT of MRI), beoordeeld in "
    "één hook-aanroep. Een aanvraag die bij order-select en opnieuw bij order-sign is "
    "beoordeeld, telt twee keer. De periode loopt van de eerste dag 00:00 UTC tot het einde "
    "van de laatste dag.",
    "not-indicated": "Beoordelingen met de beslissing ‘niet geïndiceerd’ (geen indicatie voor "
    "beeldvorming gevonden, terwijl de gegevens om dat te beoordelen er waren).",
    "cancelled": "Beoordelingen ‘niet geïndiceerd’ waarvan de laatste feedback op de kaart "
    "een suggestie accepteerde die alleen de conceptaanvraag verwijdert.",
    "replaced": "Beoordelingen ‘niet geïndiceerd’ waarvan de laatste feedback op de kaart een "
    "suggestie accepteerde die de conceptaanvraag verwijdert en een alternatief aanmaakt "
    "(verwijzing fysiotherapie).",
    "scans avoided": "geannuleerd + vervangen.",
    "accepted other": "Beoordelingen ‘niet geïndiceerd’ waarvan de laatste feedback een "
    "suggestie accepteerde die de aanvraag annuleert noch vervangt.",
    "overridden": "Beoordelingen ‘niet geïndiceerd’ waarvan de laatste feedback een afwijking "
    "was, geteld per reden (systeem en code; zonder reden telt als ‘none’).",
    "no response": "Beoordelingen ‘niet geïndiceerd’ zonder enige feedback.",
    "signed lumbar imaging order": "Een order-sign-beoordeling van een aanvraag voor lumbale "
    "beeldvorming waarvan de kaart niet geannuleerd of vervangen is (geen feedback, afgeweken "
    "of een andere suggestie geaccepteerd), wat de beslissing ook was.",
    "re-ordered": f"Vermeden scans gevolgd door een ondertekende aanvraag lumbale beeldvorming "
    f"voor dezelfde (pseudonieme) patiënt, later en hooguit {REORDER_DAYS} dagen na de "
    "vermeden beoordeling, gezocht in de hele auditopslag (ook na de periode).",
    "net avoided": "vermeden scans − opnieuw aangevraagd.",
    "28-day measure": f"In de geest van HEDIS LBP. Episodes: patiënten met ten minste één "
    f"beoordeling ‘niet geïndiceerd’ in de periode, met als startmoment de eerste. Zonder "
    f"beeldvorming: episodes zonder ondertekende aanvraag lumbale beeldvorming vanaf het "
    f"startmoment tot {HEDIS_DAYS} dagen later (de startbeoordeling telt zelf mee als die een "
    f"ondertekende aanvraag is). Percentage: zonder beeldvorming / episodes; hoger is beter.",
    "urgent follow-through": f"Spoedbeoordelingen gevolgd door een ondertekende aanvraag "
    f"lumbale beeldvorming voor dezelfde patiënt binnen {URGENT_FOLLOW_UP_HOURS} uur (de "
    f"spoedbeoordeling telt zelf mee als die een ondertekende aanvraag is).",
    "cost and radiation avoided": "netto vermeden per modaliteit × het ingestelde tarief "
    "(CDS_TARIFFS) en de effectieve dosis per onderzoek (CDS_DOSE_MSV).",
    "clinician": "Het sleutelpseudoniem van de aanvragende gebruiker (context.userId); het "
    "rapport bevat nooit namen.",
    "organisation": "De tenant die bij de beoordeling is vastgelegd (CDS_TENANT of de JWT-tenant).",
    "mode": "De CDS_MODE van de dienst bij de beoordeling: live (kaarten en ratings naar het "
    "EPD) of shadow (stille pilot: beoordeeld en vastgelegd, niets getoond). De cijfers "
    "hierboven tellen beide modi.",
    "shadow and live compared": "De cijfers per modus: de eerste en laatste dag met "
    "beoordelingen in de periode, beoordelingen, niet geïndiceerd en het aandeel daarvan, "
    "kaarten ‘niet geïndiceerd’ geannuleerd of vervangen, ondertekende aanvragen lumbale "
    "beeldvorming (ook per dag) en de 28-dagenmaat met episodes vanaf de eerste beoordeling "
    "‘niet geïndiceerd’ per patiënt in die modus (het vooruitkijken naar een ondertekende "
    "aanvraag leest alle modi).",
    "missed-alarm watch": f"Elke beoordeling ‘niet geïndiceerd’ of ‘onvoldoende gegevens’ in "
    f"de periode die later en hooguit {MISSED_ALARM_DAYS} dagen erna gevolgd werd door een "
    f"spoedbeoordeling voor dezelfde (pseudonieme) patiënt, gezocht in de hele auditopslag "
    f"(ook na de periode): vermeld met de eerste zulke spoedbeoordeling, beide "
    f"regelsetversies en modi, en de voldane criteria bij elk (criterium:reden-codes waar "
    f"vastgelegd), voor klinische beoordeling.",
}

# Definitions of this module's own figures (comparison, labels, mirror report).
EXTRA_DEFINITIONS = {
    "period before": {
        "en": "The period with as many days as the selected one, ending the day before it "
        "starts. Per month, each month is compared with the calendar month before it (a month "
        "cut by the period's first day counts its days on both sides). Changes: this period "
        "minus the one before; shares in percentage points (pp).",
        "nl": "De periode met evenveel dagen als de gekozen periode, eindigend de dag voordat "
        "die begint. Per maand wordt elke maand vergeleken met de kalendermaand ervoor (een "
        "maand die door de eerste dag van de periode wordt gesneden, telt zijn dagen aan beide "
        "kanten). Verschil: deze periode min de periode ervoor; aandelen in procentpunten (pp).",
    },
    "label": {
        "en": "A short form of a keyed pseudonym (H- clinician, P- patient): four characters "
        "of a hash of the pseudonym, lengthened within a report only where two would share "
        "one. The same person has the same label in every report under the same key.",
        "nl": "Een korte vorm van een sleutelpseudoniem (H- arts, P- patiënt): vier tekens "
        "van een hash van het pseudoniem, binnen een rapport alleen langer waar twee hetzelfde "
        "label zouden krijgen. Dezelfde persoon heeft onder dezelfde sleutel in elk rapport "
        "hetzelfde label.",
    },
    "mirror report": {
        "en": f"One clinician's figures in the period, in the organisation where they made "
        f"most of their evaluations, beside the median and interquartile range (quartiles as "
        f"Excel's QUARTILE.INC) of the other clinicians there with evaluations in the period. "
        f"A peer figure is shown only when at least {MIN_PEERS} peers have it (a share needs "
        f"its denominator). Shares: not indicated of evaluations; avoided, overridden and "
        f"overridden per reason of not indicated. 28-day measure: episodes of the "
        f"organisation (first not-indicated evaluation of each patient there in the period) "
        f"counted for the clinician of that first evaluation.",
        "nl": f"De cijfers van één arts in de periode, in de organisatie waar die de meeste "
        f"beoordelingen had, naast de mediaan en interkwartielafstand (kwartielen zoals "
        f"KWARTIEL.INC in Excel) van de andere artsen daar met beoordelingen in de periode. "
        f"Een cijfer van collega’s staat er alleen als ten minste {MIN_PEERS} collega’s het "
        f"hebben (een aandeel vraagt een noemer). Aandelen: niet geïndiceerd van de "
        f"beoordelingen; vermeden, afgeweken en afgeweken per reden van niet geïndiceerd. "
        f"28-dagenmaat: episodes van de organisatie (eerste beoordeling ‘niet geïndiceerd’ van "
        f"elke patiënt daar in de periode), geteld voor de arts van die eerste beoordeling.",
    },
}

NAMES_NL = {
    "evaluation": "beoordeling",
    "not-indicated": "niet geïndiceerd",
    "cancelled": "geannuleerd",
    "replaced": "vervangen",
    "scans avoided": "vermeden scans",
    "accepted other": "andere suggestie geaccepteerd",
    "overridden": "afgeweken",
    "no response": "geen reactie",
    "signed lumbar imaging order": "ondertekende aanvraag lumbale beeldvorming",
    "re-ordered": "opnieuw aangevraagd",
    "net avoided": "netto vermeden",
    "28-day measure": "28-dagenmaat",
    "urgent follow-through": "opvolging spoed",
    "cost and radiation avoided": "vermeden kosten en straling",
    "clinician": "arts",
    "organisation": "organisatie",
    "mode": "modus",
    "shadow and live compared": "schaduw en live vergeleken",
    "missed-alarm watch": "bewaking gemiste alarmsignalen",
    "period before": "periode ervoor",
    "label": "label",
    "mirror report": "spiegelinformatie",
}


def translator(language: str) -> Callable[[str], str]:
    """t(key) → the text in `language` (a missing key is a KeyError: tests find it)."""
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}")

    def t(key: str, **values: object) -> str:
        text = TEXT[key][language]
        return text.format(**values) if values else text

    return t


def definitions(language: str) -> dict[str, str]:
    """The report's definitions (keys as in figures.DEFINITIONS) in `language`."""
    base: Mapping[str, str] = DEFINITIONS if language == "en" else DEFINITIONS_NL
    # A definition added to figures.py without its Dutch text falls back to English here;
    # tests/unit/test_report_translations.py fails on it, so it does not ship that way.
    texts = {key: base.get(key, DEFINITIONS[key]) for key in DEFINITIONS}
    texts.update({key: value[language] for key, value in EXTRA_DEFINITIONS.items()})
    return texts


def definition_name(key: str, language: str) -> str:
    """The shown name of a definition."""
    return key if language == "en" else NAMES_NL.get(key, key)
