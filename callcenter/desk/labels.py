"""The words the desk pages show for the codes the services store (outcomes, campaign kinds,
seat states, rubric items, lead states); marked for the catalogs, worded per language by
`label()` in the templates. A code without a label is shown as it is (a rubric item a desk
added in its settings, say)."""

from __future__ import annotations

from callcenter.pages.i18n import N_

LABELS: dict[str, dict[str, str]] = {
    "kind": {
        "renewal": N_("Renewal"),
        "lapsed": N_("Lapsed"),
        "trial": N_("Trial member"),
        "callback": N_("Post-underwriting callback"),
        "reminder": N_("Expiry reminder"),
    },
    "outcome": {
        "answered": N_("answered"),
        "answered_hung_up_early": N_("answered, customer hung up at once"),
        "busy": N_("busy"),
        "no_answer": N_("no answer"),
        "congestion": N_("network busy"),
        "unreachable": N_("unreachable"),
        "switched_off": N_("switched off"),
        "wrong_number": N_("wrong number"),
        "failed": N_("failed on our side"),
        "hung_up_by_action": N_("hung up by the desk"),
        "unknown": N_("unknown"),
        "not_sent": N_("not sent"),
        "abandoned": N_("abandoned"),
        "skipped": N_("skipped in preview"),
    },
    "seat": {
        "ready": N_("Ready"),
        "ringing": N_("Ringing"),
        "on_call": N_("On a call"),
        "wrap_up": N_("Wrap-up"),
        "paused": N_("Paused"),
    },
    "rubric": {
        "greeting": N_("Greeting"),
        "accuracy": N_("Accuracy"),
        "compliance": N_("Compliance"),
        "outcome_handled": N_("Outcome handled"),
    },
    "lead": {
        "new": N_("new"),
        "due": N_("due"),
        "assigned": N_("assigned"),
        "scheduled": N_("callback booked"),
        "closed": N_("closed"),
    },
    "role": {
        "specialist": N_("Specialist"),
        "supervisor": N_("Supervisor"),
        "maintainer": N_("CRM maintainer"),
    },
}
