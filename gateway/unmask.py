"""Who may see a recording unmasked (``unmask: true`` in a policy), and the grant a given reason earns.

Masked recordings (:mod:`recorder.masking`) and typed text (``record_input: full``) are shown
as recorded only to users a policy matching their groups and source address allows to
``unmask`` — administrators too need such a policy — and only after they give a reason
(``POST /api/v1/recordings/{id}/unmask``), which is audited (``recording.unmask``) and added
to the recording's events. The answer is a *grant*: a token bound to the caller's web session,
the recording and an expiry (:data:`GRANT_SECONDS`), an HMAC under the web session's id (so it
needs no storage and holds on every node, and dies with the sign-in). The unmasked video and
the typed text ask for it, and the policy is asked again each time.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from auth.identity import Identity
from gateway.policy import IPAddress, PolicySet, normalize_source

#: How long a reason given lets its user see one recording unmasked.
GRANT_SECONDS = 30 * 60
#: The longest reason (the same bound as a supervisor's reason to end a session).
MAX_REASON = 300
_GRANT = re.compile(r"(\d{1,12})\.([0-9a-f]{64})")


def may_unmask(identity: Identity, source: IPAddress, policies: PolicySet) -> bool:
    """Whether any policy matching ``identity``'s groups and ``source`` says ``unmask: true``."""
    source = normalize_source(source)
    return any(policy.unmask and policy.group_matches(identity) and policy.source_matches(source)
               for policy in policies.policies)


def _signature(web_session_id: str, recording_id: str, expires: int) -> str:
    message = f"deskgate unmask grant|{recording_id}|{expires}".encode()
    return hmac.new(web_session_id.encode(), message, hashlib.sha256).hexdigest()


def issue_grant(web_session_id: str, recording_id: str, now: float) -> str:
    """A grant to see ``recording_id`` unmasked in this web session until :data:`GRANT_SECONDS` from ``now``."""
    expires = int(now) + GRANT_SECONDS
    return f"{expires}.{_signature(web_session_id, recording_id, expires)}"


def grant_valid(grant: str | None, web_session_id: str, recording_id: str, now: float) -> bool:
    """Whether ``grant`` was issued to this web session for this recording and has not expired."""
    match = _GRANT.fullmatch(grant or "")
    if match is None or int(match.group(1)) < now:
        return False
    return hmac.compare_digest(match.group(2), _signature(web_session_id, recording_id, int(match.group(1))))
