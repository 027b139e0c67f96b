"""Who acts for this request: the signed-in user's principal, or the lab persona they play."""

import uuid

from portal.models import LabPersona
from security import context
from security.services import principal_for_user

SESSION_PERSONA = "lab_persona_id"


class PrincipalMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.principal = None
        request.real_principal = None
        request.persona = None
        if request.user.is_authenticated:
            from portal.services import can_play_personas

            own = principal_for_user(request.user)
            request.real_principal = own
            request.principal = own
            persona_id = request.session.get(SESSION_PERSONA)
            if persona_id and can_play_personas(request.user):
                persona = LabPersona.objects.select_related("principal").filter(pk=persona_id).first()
                if persona is not None:
                    request.persona = persona
                    request.principal = persona.principal
        played_as = request.persona.title if request.persona else ""
        with context.acting(real_actor=request.real_principal, correlation=uuid.uuid4(), played_as=played_as):
            return self.get_response(request)
