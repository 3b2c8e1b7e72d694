"""The second opinion: an asynchronous classifier fed from the stored complaint.

Intake classifies in a few milliseconds and never waits for more. The `complaint_reviewer`
function reads every new complaint and every patient reply to a recall message from the
table's stream, a few seconds later, and asks the second-opinion classifier: the rules and the
learned model, and Amazon Bedrock where the hospital turned it on. When that raises a
complaint's urgency, the complaint is updated, its SLA recomputed and, for critical, the on-call
contact paged (`ComplaintDesk.second_opinion`). A recall reply it finds critical or high
("임플란트 한 곳에서 피가 계속 나요") becomes a complaint of its own, linked to the patient and
the touchpoint, with the alert.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol

from sotong.complaints.classification import Classifier
from sotong.complaints.classify import BEDROCK_MODEL_ENV
from sotong.complaints.repository import ReplyLink, is_complaint_item
from sotong.complaints.rule_classifier import RuleClassifier
from sotong.complaints.service import ComplaintDesk
from sotong.config.schema import HospitalConfig

REPLY_CHANNELS = ("sms", "kakao", "phone")


def second_opinion_for(hospital: HospitalConfig) -> Classifier:
    """The rules and the learned model; Bedrock over them when the hospital configured it (the
    model id comes from the config, through the function's environment)."""
    from sotong.complaints import learned
    from sotong.complaints.combined import CombinedClassifier

    rules = RuleClassifier(hospital)
    base: Classifier = CombinedClassifier(rules, learned.load()) if learned.available() else rules
    model_id = os.environ.get(BEDROCK_MODEL_ENV) or hospital.complaints.bedrock_model_id
    if model_id:
        from sotong.complaints.bedrock import BedrockClassifier

        return BedrockClassifier(model_id, rules, base)
    return base


class Contact(Protocol):
    @property
    def phone(self) -> str | None: ...

    @property
    def name(self) -> str: ...


class Patients(Protocol):
    """The recall side as the reviewer needs it (`recall.repository.DynamoPatientRepository`;
    the function wires it, so complaints and recall do not import each other)."""

    def conversation_owner(self, item: dict[str, Any]) -> str | None:
        """The patient id when `item` is a message of a patient's recall conversation."""
        ...

    def patient(self, patient_id: str) -> Contact | None: ...


@dataclass
class SecondOpinion:
    """The reviewer: a second opinion on each new complaint and each patient reply to a recall."""

    desk: ComplaintDesk
    classifier: Classifier
    patients: Patients

    def record(self, image: dict[str, Any]) -> str:
        """One new item from the stream (as stored); what was done with it."""
        if is_complaint_item(image):
            return self.complaint(image)
        patient_id = self.patients.conversation_owner(image)
        if patient_id is not None:
            return self.reply(patient_id, image)
        return "ignored"

    def complaint(self, item: dict[str, Any]) -> str:
        opinion = self.classifier.classify(str(item.get("text", "")))
        return self.desk.second_opinion(str(item["id"]), opinion)

    def reply(self, patient_id: str, item: dict[str, Any]) -> str:
        """A patient's message in a recall conversation: normal stays in the conversation;
        critical or high becomes a complaint."""
        if item.get("direction") != "in" or item.get("complaint_id"):
            return "ignored"
        opinion = self.classifier.classify(str(item.get("text", "")))
        if opinion.urgency == "normal":
            return "normal"
        patient = self.patients.patient(patient_id)
        if patient is None or not patient.phone:
            return "gone"  # erased meanwhile
        hospital = self.desk.hospital
        channel = next((c for c in REPLY_CHANNELS if c in hospital.channels), hospital.channels[0])
        key = f"{patient_id}:{item['sk']}"
        result = self.desk.from_patient_reply(
            key=key,
            text=str(item.get("text", "")),
            phone=str(patient.phone),
            name=patient.name,
            channel=channel,
            opinion=opinion,
            refs={"patient_id": patient_id, "touchpoint": item.get("touchpoint")},
            link=ReplyLink(partition=item["pk"], sort=item["sk"], urgency=opinion.urgency),
        )
        if result is None:
            return "gone"
        return "complaint" if result[1] else "duplicate"
