"""What a person signing in is told, in their language: the refusals of :mod:`auth.errors` as catalog messages.

The msgids are the errors' own English texts, so an English answer reads exactly as before; a
message this module does not know (a new error) is passed on untranslated.
"""

from __future__ import annotations

from auth.errors import AuthError, RateLimited, ServerBusy, UnusableUsername
from auth.names import COMPATIBILITY_FORM, CONTROL_OR_INVISIBLE
from gateway.i18n import Translator


def N_(message: str) -> str:  # noqa: N802 - gettext's name for "mark for extraction, translate later"
    return message


#: The fixed texts of the refusals people see, marked for ``make messages``.
FIXED_MESSAGES = frozenset({
    N_("wrong username or password, or wrong or expired authenticator code; check all three and try again"),
    N_("wrong username or password"),
    N_("wrong or expired authenticator code"),
    N_("setting up your authenticator took too long or failed too often; sign in again"),
    N_("an authenticator is already set up for this account; sign in with its code"),
    N_("this account is disabled; ask an administrator"),
    N_("your account is not in a group allowed to use this gateway; ask an administrator"),
    N_("the user directory is unavailable; try again later"),
    N_("the gateway cannot check authenticator codes right now; contact your administrator"),
    N_("set up your authenticator app to finish signing in"),
    N_("authentication failed"),
})


def refusal_message(error: AuthError, translator: Translator) -> str:
    """``error``'s message for the person signing in, in ``translator``'s language."""
    if isinstance(error, RateLimited):
        return translator.gettext("too many failed sign-ins; try again in {seconds} s", seconds=error.retry_after)
    if isinstance(error, ServerBusy):
        return translator.gettext("the gateway is busy checking other sign-ins; try again in {seconds} s",
                                  seconds=error.retry_after)
    if isinstance(error, UnusableUsername) and error.reason == COMPATIBILITY_FORM:
        return translator.gettext("the username contains full-width or other compatibility characters; type it "
                                  "as your administrator wrote it, with the input method off for Latin letters")
    if isinstance(error, UnusableUsername) and error.reason == CONTROL_OR_INVISIBLE:
        return translator.gettext("the username contains control or invisible characters; type it as your "
                                  "administrator wrote it, exactly")
    message = str(error)
    return translator.gettext(message) if message in FIXED_MESSAGES else message
