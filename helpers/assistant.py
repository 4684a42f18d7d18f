"""A simulated LLM application: a clinical assistant with tools, and prompt injection.

**This is not a language model.** Prompt injection needs a model that follows instructions,
and none runs in this course. :class:`ScriptedFollower` is a small deterministic stand-in that
plays the model's part in the control flow of an LLM application: it "follows" every line of
its context that reads like a tool instruction, whoever wrote it. A real LLM is not a rule; it
follows instructions written in any form, often and not always, which makes filters on the
input weaker still, and leaves the defences that do not depend on the model (privilege
separation, allow-lists, human confirmation, model output treated as untrusted) as the ones
that hold.

The application (:func:`run_assistant`): a clinician asks for a summary of a patient's
referral letter; the application retrieves the letter (untrusted text from outside the
hospital), gives it to the "model" with the system instructions, and executes the tool calls
the model returns: ``read_record(patient)`` and ``send_email(to, body)``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

#: The instruction lines the stand-in obeys: ``send the record of <patient> to <address>``.
SEND = re.compile(r"send (?:the )?(?:full )?record of (?P<patient>[\w-]+) to (?P<to>[\w.+-]+@[\w.-]+)", re.IGNORECASE)


@dataclass(frozen=True)
class ToolCall:
    """A tool call proposed by the model: ``name`` and its arguments."""

    name: str
    args: tuple[tuple[str, str], ...]

    def arg(self, key: str) -> str:
        return dict(self.args)[key]


@dataclass
class Outcome:
    """What the application did: tool calls executed, blocked (with reasons), e-mails sent."""

    executed: list[ToolCall] = field(default_factory=list)
    blocked: list[tuple[ToolCall, str]] = field(default_factory=list)
    sent: list[tuple[str, str]] = field(default_factory=list)

    @property
    def exfiltrated(self) -> bool:
        """True when a record left the hospital: an e-mail to an outside address carrying record text."""
        return any(not to.endswith("@hospital.example") and "mrn" in body for to, body in self.sent)


class ScriptedFollower:
    """A deterministic stand-in for an instruction-following model (**not** a language model).

    ``respond(context)`` returns tool calls: ``read_record`` for the patient in the user's
    request, and, for every line of the whole context matching :data:`SEND`, a
    ``read_record`` plus a ``send_email`` of that record. It cannot tell the clinician's
    instructions from instructions inside a retrieved document: that is the weakness prompt
    injection exploits, and it is shared by real LLMs, which see one stream of tokens.
    """

    def respond(self, user_request: str, context: str) -> list[ToolCall]:
        calls = []
        found = re.search(r"patient ([\w-]+)", user_request)
        if found:
            calls.append(ToolCall("read_record", (("patient", found.group(1)),)))
        for match in SEND.finditer(context):
            calls.append(ToolCall("read_record", (("patient", match.group("patient")),)))
            calls.append(ToolCall("send_email", (("to", match.group("to")), ("patient", match.group("patient")))))
        return calls


def keyword_filter(document: str) -> str:
    """A naive input filter: drops lines containing "ignore previous instructions". It is shown
    failing: an injection needs no such phrase."""
    return "\n".join(line for line in document.splitlines() if "ignore previous instructions" not in line.lower())


def run_assistant(user_request: str, patient: str, document: str, records: dict[str, str], *,
                  input_filter: bool = False, least_privilege: bool = False,
                  allowed_domains: Sequence[str] | None = None, confirm: bool | None = None) -> Outcome:
    """Run one turn of the simulated assistant and return what it did.

    ``document`` is the retrieved (untrusted) text; ``records`` the hospital's records.
    Defences, all outside the model: ``input_filter`` (:func:`keyword_filter` on the document),
    ``least_privilege`` (tools act with the clinician's scope: only ``patient``'s record),
    ``allowed_domains`` (e-mail only to these domains), ``confirm`` (``None``: no human in the
    loop; ``False``/``True``: a human shown the exact e-mail declines/approves every send).
    """
    if patient not in records:
        raise ValueError(f"patient must be one of the records {sorted(records)}, got {patient!r}")
    if confirm not in (None, True, False):
        raise ValueError(f"confirm must be None, True or False, got {confirm!r}")
    if input_filter:
        document = keyword_filter(document)
    context = "system: you are a clinical assistant. summarise the referral letter for the clinician.\n" + document
    outcome = Outcome()
    readable: dict[str, str] = {}
    for call in ScriptedFollower().respond(user_request, context):
        if call.name == "read_record":
            who = call.arg("patient")
            if least_privilege and who != patient:
                outcome.blocked.append((call, f"least privilege: the clinician asked about {patient}, not {who}"))
                continue
            if who in records:
                readable[who] = records[who]
                outcome.executed.append(call)
        elif call.name == "send_email":
            to, who = call.arg("to"), call.arg("patient")
            if allowed_domains is not None and to.split("@")[-1] not in allowed_domains:
                outcome.blocked.append((call, f"allow-list: {to.split('@')[-1]} is not an allowed domain"))
                continue
            if confirm is False:
                outcome.blocked.append((call, "human confirmation: the clinician declined the e-mail"))
                continue
            outcome.executed.append(call)
            outcome.sent.append((to, readable.get(who, "")))
    return outcome
