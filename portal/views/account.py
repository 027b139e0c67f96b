"""Signing in safely: the lockout page, changing one's own password, and the Sign-in lockouts page where an
Owner unlocks a username at an address (security.signin does the work)."""

from __future__ import annotations

import ipaddress

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils import timezone
from django.views.decorators.http import require_POST

from portal.forms import OwnPasswordChangeForm
from portal.shortcuts import BadInput, report_outcome
from security import scopes, signin
from security.guards import GuardDenied, evaluate
from security.operations import SIGN_IN_LOCKOUT_DELETE, SIGN_IN_LOCKOUT_READ
from security.services import principal_for_user


def locked_out(request, original_response=None, credentials=None):
    """axes' answer to a locked-out sign-in (AXES_LOCKOUT_CALLABLE): 429, with who is locked, at which address,
    until when, and who can lift it sooner."""
    username = str((credentials or {}).get("username") or request.POST.get("username") or "").strip()
    username = username[:signin.MAX_USERNAME]
    address = getattr(request, "axes_ip_address", None) or signin.client_address(request)
    lockout = signin.lockout_of(username, address)
    response = render(request, "portal/signin_locked.html", {
        "username": username, "address": address, "lockout": lockout, "limit": signin.failure_limit(),
        "minutes": signin.lockout_minutes(),
    }, status=429)
    if lockout is not None:
        response["Retry-After"] = str(max(1, int((lockout.until - timezone.now()).total_seconds()) + 1))
    response["Cache-Control"] = "no-store"
    return response


class PasswordChangeView(auth_views.PasswordChangeView):
    """Change your own password (every signed-in person; no role needed). Wrong current passwords count as
    failed sign-ins; the new one must pass AUTH_PASSWORD_VALIDATORS. Other sessions of the account end."""

    template_name = "portal/password_change.html"
    form_class = OwnPasswordChangeForm
    success_url = reverse_lazy("portal:home")

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        kwargs["request"] = self.request
        return kwargs

    def form_valid(self, form):
        response = super().form_valid(form)  # saves it and keeps this session signed in
        signin.record_password_change(getattr(self.request, "real_principal", None)
                                      or principal_for_user(self.request.user))
        messages.success(self.request, "Your password was changed. Use the new one the next time you sign in.")
        return response


@login_required
def signin_lockouts(request):
    """Security > Sign-in lockouts: who is locked out at which address, with Unlock for whoever may."""
    read = evaluate(request.principal, SIGN_IN_LOCKOUT_READ, scopes.ROOT)
    if not read.allowed:
        raise GuardDenied(read)
    return render(request, "portal/signin_lockouts.html", {
        "lockouts": signin.current_lockouts(),
        "unlock": evaluate(request.principal, SIGN_IN_LOCKOUT_DELETE, scopes.ROOT),
        "limit": signin.failure_limit(),
        "minutes": signin.lockout_minutes(),
    })


@login_required
@require_POST
def signin_unlock(request):
    username = request.POST.get("username", "").strip()
    address = request.POST.get("ip_address", "").strip()
    if not username or len(username) > signin.MAX_USERNAME or "\x00" in username:
        raise BadInput("The username sent with Unlock is missing or not valid. Reload Sign-in lockouts and click "
                       "Unlock on the row again.")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise BadInput(f"'{address[:60]}' is not an IP address. Reload Sign-in lockouts and click Unlock on the "
                       "row again.") from None
    report_outcome(
        request,
        lambda: signin.unlock_sign_in(request.principal, username=username, ip_address=address),
        lambda lockout: f"Unlocked '{lockout.username}' at {lockout.ip_address}: they can sign in from that "
                        f"address again.",
    )
    return redirect("portal:signin_lockouts")
