"""ImagingStudy and DiagnosticReport: prior lumbar imaging."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cds_service.fhir.facts.common import (
    period_start,
)
from cds_service.fhir.facts.registry import reads
from cds_service.rules.model import (
    Modality,
    PriorImaging,
)

if TYPE_CHECKING:
    from cds_service.fhir.facts.builder import FactsBuilder


# DICOM modality codes of ImagingStudy.series.modality.
_DICOM_MODALITY = {"MR": Modality.MRI, "CT": Modality.CT, "CR": Modality.XRAY, "DX": Modality.XRAY}
# Series bodySite: SNOMED "Lumbar spine structure" and the DICOM body part "LSPINE".
_LUMBAR_BODY_SITES = frozenset({"122496007", "LSPINE"})
_REPORT_DONE = frozenset({"final", "amended", "corrected", "appended", "preliminary"})
_STUDY_IGNORED = frozenset({"cancelled", "entered-in-error"})


@reads("ImagingStudy")
def read_imaging_study(b: FactsBuilder, study: Any, reference: str) -> None:
    """Prior lumbar imaging from procedure codes, descriptions and series."""
    if study.status in _STUDY_IGNORED or b.based_on_excluded(study):
        return
    procedures = list(study.procedureCode or ())
    modality = b.imaging_modality(b.recognise(procedures), procedures)
    series_modality: Modality | None = None
    lumbar_series = False
    for series in study.series or ():
        if series.modality is not None and series_modality is None:
            series_modality = _DICOM_MODALITY.get((series.modality.code or "").upper())
        site = series.bodySite
        if site is not None and (site.code or "").upper() in _LUMBAR_BODY_SITES:
            lumbar_series = True
        if modality is False:
            for text in (series.description, site.display if site else None):
                if text and b.order_modality(text) is not None:
                    modality = b.order_modality(text)
                    break
    if modality is False and study.description:
        modality = b.order_modality(study.description) or False
    if modality is False and lumbar_series:
        modality = series_modality
    if modality is False:
        return
    started = b.when(study.started)
    if started is None:
        b.note(f"{reference}: no date")
        return
    b.prior_imaging.append(PriorImaging(modality or series_modality, started, reference))


@reads("DiagnosticReport")
def read_diagnostic_report(b: FactsBuilder, report: Any, reference: str) -> None:
    """Prior lumbar imaging from a radiology report's code."""
    if report.status not in _REPORT_DONE or b.based_on_excluded(report):
        return
    code = b.recognise([report.code], [report.conclusion])
    when = (
        b.when(report.effectiveDateTime)
        or b.when(period_start(report.effectivePeriod))
        or b.when(report.issued)
    )
    b.surgical_indication(code, reference, when)
    modality = b.imaging_modality(code, [report.code])
    if modality is False:
        return
    if when is None:
        b.note(f"{reference}: no date")
        return
    b.prior_imaging.append(PriorImaging(modality, when, reference))
