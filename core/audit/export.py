"""Export the audit trail as JSON, CSV or DICOM PS3.15 A.5 audit messages (XML)."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable

from core.audit.log import StoredEvent

# ParticipantObjectIDTypeCode per object kind (RFC 3881 / DCM codes used by PS3.15 A.5.2).
_ID_TYPES = {
    "patient": ("2", "RFC-3881", "Patient Number", "1", "1"),
    "study": ("110180", "DCM", "Study Instance UID", "2", "3"),
    "series": ("110180", "DCM", "Study Instance UID", "2", "3"),
    "instance": ("110181", "DCM", "SOP Class UID", "2", "3"),
    "user": ("11", "RFC-3881", "User Identifier", "1", "6"),
}
_ACTION = {
    "INSTANCES_ACCESSED": "R",
    "EXPORT": "R",
    "IMPORT": "C",
    "QUERY": "E",
    "AUDIT_LOG_USED": "R",
    "INSTANCES_TRANSFERRED": "R",
}
FIELDS = [
    "index",
    "created_at",
    "user",
    "role",
    "workstation",
    "event_type",
    "outcome",
    "objects",
    "details",
    "prev_hash",
    "hash",
]


def to_json(events: Iterable[StoredEvent]) -> str:
    return json.dumps(
        [
            {
                **e.content(),
                "event_type": e.event_type.meaning,
                "prev_hash": e.prev_hash,
                "hash": e.hash,
            }
            for e in events
        ],
        indent=2,
        ensure_ascii=False,
    )


def to_csv(events: Iterable[StoredEvent]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(FIELDS)
    for e in events:
        writer.writerow(
            [
                e.index,
                e.created_at,
                e.user,
                e.role,
                e.workstation,
                e.event_type.meaning,
                e.outcome,
                json.dumps(e.objects, ensure_ascii=False),
                json.dumps(e.details, ensure_ascii=False),
                e.prev_hash,
                e.hash,
            ]
        )
    return out.getvalue()


# PS3.15 A.5.1 EventActionCode values; an event may say its own (an annotation created,
# updated or deleted is Instances Accessed with C/U/D) in details["event_action"].
_ACTIONS = frozenset({"C", "R", "U", "D", "E"})


def _action(e: StoredEvent) -> str:
    own = e.details.get("event_action") if isinstance(e.details, dict) else None
    if isinstance(own, str) and own in _ACTIONS:
        return own
    return _ACTION.get(e.event_type.name, "E")


def _message(e: StoredEvent) -> ET.Element:
    msg = ET.Element("AuditMessage")
    ident = ET.SubElement(
        msg,
        "EventIdentification",
        {
            "EventActionCode": _action(e),
            "EventDateTime": e.created_at,
            "EventOutcomeIndicator": str(e.outcome),
        },
    )
    ET.SubElement(
        ident,
        "EventID",
        {
            "csd-code": e.event_type.code,
            "codeSystemName": e.event_type.scheme,
            "originalText": e.event_type.meaning,
        },
    )
    participant = ET.SubElement(
        msg, "ActiveParticipant", {"UserID": e.user, "UserIsRequestor": "true"}
    )
    if e.role:
        ET.SubElement(
            participant,
            "RoleIDCode",
            {"csd-code": e.role, "codeSystemName": "99DOCTORAI", "originalText": e.role},
        )
    ET.SubElement(msg, "AuditSourceIdentification", {"AuditSourceID": e.workstation})
    for obj in e.objects:
        code, scheme, text, type_code, role = _ID_TYPES.get(
            obj["kind"], ("110180", "DCM", obj["kind"], "2", "4")
        )
        node = ET.SubElement(
            msg,
            "ParticipantObjectIdentification",
            {
                "ParticipantObjectID": obj["id"],
                "ParticipantObjectTypeCode": type_code,
                "ParticipantObjectTypeCodeRole": role,
            },
        )
        ET.SubElement(
            node,
            "ParticipantObjectIDTypeCode",
            {"csd-code": code, "codeSystemName": scheme, "originalText": text},
        )
        if obj.get("name"):
            ET.SubElement(node, "ParticipantObjectName").text = obj["name"]
    return msg


def to_dicom_xml(events: Iterable[StoredEvent]) -> str:
    """One PS3.15 AuditMessage per event, inside an AuditMessages element."""
    root = ET.Element("AuditMessages")
    for e in events:
        root.append(_message(e))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


EXPORTERS = {"json": to_json, "csv": to_csv, "dicom-xml": to_dicom_xml}
