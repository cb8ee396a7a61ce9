"""Schemathesis hooks for lty, loaded by scripts/schemathesis.sh.

Audio bodies are sent as bytes, and header values as text. Three exceptions
to "every response is what the OpenAPI document promises", each narrow and
named here:

* 503: no vendor (LLM, speech, RTC, WeChat, SMS, images) is configured in a
  fuzzing run, so the routes that need one answer 503
  `provider_not_configured`, as documented. schemathesis.toml lets a 503 past
  `not_a_server_error`; the check `only_provider_not_configured_503` fails
  any 503 with another code and counts the accepted ones, which the script
  prints.

* 400 for a valid request: a few rules depend on state or relate two fields,
  which a schema cannot state (a card code's check symbol, an SMS code that
  was sent, `until` after `since`). `REFUSALS` names each operation, the
  error codes and fields it may answer 400 with, and why.
  `python3 scripts/schemathesis_hooks.py` prints the per-operation settings
  that let those 400s past `positive_data_acceptance`; the check
  `refusals_have_their_named_reason` then fails any 400 to a valid request
  with another code or field.

* A catalogue row (achievement, persona, plan) is retired by DELETE, not
  removed: `RETIRED_ON_DELETE` turns the `use_after_free` check off for
  those paths alone.
"""

import json
import os
import sys

ACCEPTED_503 = "provider_not_configured"

CARD_CHECK_SYMBOL = (
    {("validation_error", "code")},
    "a card code's last symbol is a check symbol over the others (a typo is "
    "a 400), which a pattern cannot state",
)

# (method, path) -> ({(error code, details.field)}, reason). A field of None
# matches an error without details.field.
REFUSALS = {
    ("GET", "/api/card/{code}/qr.png"): CARD_CHECK_SYMBOL,
    ("GET", "/api/card/{code}/qr.svg"): CARD_CHECK_SYMBOL,
    ("POST", "/api/card/scan/"): CARD_CHECK_SYMBOL,
    ("POST", "/api/card/redeem/"): CARD_CHECK_SYMBOL,
    ("GET", "/api/v1/admin/cards/{code}/"): CARD_CHECK_SYMBOL,
    ("POST", "/api/v1/admin/cards/{code}/disable/"): CARD_CHECK_SYMBOL,
    ("GET", "/api/v1/admin/audit/"): (
        {("validation_error", "until")},
        "`until` must be after `since`: a relation between two parameters",
    ),
    ("POST", "/api/user/sms-login/"): (
        {("sms_code_expired", None), ("sms_code_invalid", None)},
        "the code must be the one last sent to the phone, and still live",
    ),
    ("POST", "/api/device/voice-chat/update/"): (
        {("validation_error", "text")},
        "`text` is required by the commands that speak it (speak, prompt, "
        "ask), and only by those",
    ),
    ("POST", "/api/device/rtc-token/get_by_mac/"): (
        {("validation_error", "mac_address")},
        "the MAC comes from `mac_address` or, on a signed request, from "
        "`X-Device-Mac`: one of the two is required",
    ),
    ("POST", "/api/v1/admin/card-batches/"): (
        {
            ("validation_error", "content_ref"),
            ("validation_error", "plan_id"),
            ("validation_error", "days"),
            ("validation_error", "payload"),
            ("validation_error", "expires_at"),
        },
        "which fields a batch needs depends on its kind (content: "
        "content_ref; membership: an existing plan_id and days), and "
        "expires_at must be in the future",
    ),
    ("POST", "/api/v1/admin/firmware/"): (
        {
            ("validation_error", "file"),
            ("validation_error", "board"),
            ("validation_error", "version"),
        },
        "the body must be an ESP32 application image (first byte 0xE9), and "
        "board and version come from the query or from the multipart form",
    ),
    ("POST", "/api/v1/admin/personas/"): (
        {("validation_error", "age_min")},
        "age_min must not be above age_max: a relation between two fields",
    ),
    ("PATCH", "/api/v1/admin/personas/{id}/"): (
        {("validation_error", "age_min")},
        "age_min must not be above age_max (the stored one when only one is "
        "given): a relation between two fields",
    ),
}

POSITIVE_STATUSES = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]

# Catalogue rows that DELETE retires rather than removes: the row stays,
# readable and editable by operators, because unlocks, conversations and
# subscription periods refer to it. A read or an edit after the DELETE is
# therefore a 200, not the 404 the `use_after_free` check expects.
RETIRED_ON_DELETE = (
    "/api/v1/admin/achievements/{id}/",
    "/api/v1/admin/personas/{id}/",
    "/api/v1/admin/plans/{id}/",
)


def operations_toml():
    """The per-operation settings that let the named 400s through."""
    out = []
    for (method, path), (_, reason) in sorted(REFUSALS.items()):
        out.append(f"\n# {reason}")
        out.append("[[operations]]")
        out.append(f'include-method = "{method}"')
        out.append(f'include-path = "{path}"')
        out.append(
            "checks.positive_data_acceptance.expected-statuses = "
            + json.dumps(POSITIVE_STATUSES)
        )
    for path in RETIRED_ON_DELETE:
        out.append("\n# DELETE retires this row; it stays readable and editable")
        out.append("[[operations]]")
        out.append(f'include-path = "{path}"')
        out.append("checks.use_after_free.enabled = false")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(operations_toml())
    sys.exit(0)

import schemathesis  # noqa: E402  (not needed to print the settings)

# `POST /api/ai/voice-chat/` takes a WAV file as the body: sent as bytes,
# like `application/octet-stream`.
schemathesis.serializer.alias("audio/wav", "application/octet-stream")


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    """Header values go out as text.

    A stateful link may carry a number from a response (a device binding's
    `id`) into a header (`Device-Id`); Schemathesis hands it to `requests`
    as a number, which refuses to send it and ends the run with a network
    error. A client sends its text, which lty then judges like any other.
    """
    if case.headers:
        for name, value in list(case.headers.items()):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                case.headers[name] = str(value)


def _error(response):
    try:
        body = response.json()
    except Exception:
        return None, None
    if not isinstance(body, dict):
        return None, None
    details = body.get("details")
    field = details.get("field") if isinstance(details, dict) else None
    return body.get("code"), field


@schemathesis.check
class only_provider_not_configured_503:
    """A 503 is only ever `provider_not_configured`; those are counted."""

    def __init__(self):
        # A set: a response may be checked again while shrinking or replaying.
        self.seen = set()

    def after_response(self, ctx, response, case):
        if response.status_code != 503:
            return
        code, _ = _error(response)
        if code != ACCEPTED_503:
            raise AssertionError(
                f"503 with code {code!r}: only {ACCEPTED_503!r} is accepted"
            )
        self.seen.add((case.operation.label, case.id))

    def after_run(self, ctx):
        path = os.environ.get("LTY_ST_503_REPORT")
        if not path:
            return
        per_operation = {}
        for label, _ in self.seen:
            per_operation[label] = per_operation.get(label, 0) + 1
        with open(path, "w", encoding="utf-8") as out:
            json.dump(
                {"total": len(self.seen), "operations": per_operation},
                out,
                indent=1,
                sort_keys=True,
            )


@schemathesis.check
def refusals_have_their_named_reason(ctx, response, case):
    """A valid request refused with 400 names one of REFUSALS' reasons."""
    if response.status_code != 400 or case.meta is None:
        return None
    if not case.meta.generation.mode.is_positive:
        return None
    rule = REFUSALS.get((case.operation.method.upper(), case.operation.path))
    if rule is None:
        # positive_data_acceptance reports it.
        return None
    allowed, reason = rule
    code, field = _error(response)
    if (code, field) not in allowed:
        raise AssertionError(
            f"valid request refused with {code!r} (field {field!r}); this "
            f"operation may only refuse for: {reason}"
        )
    return None
