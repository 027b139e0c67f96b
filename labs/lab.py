"""The labs' part of the demo (`seed_lab`): a demo class of one pair, taught by the trainer, beside the
demo lab. Idempotent: made once."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError

from labs import catalogue, classes
from labs.models import LabClass

DEMO_CLASS_NAME = "Demo class"
DEMO_LABS = ("mua-resource-guard", "vault-basics")


def seed_demo_class(lab, *, stdout=None) -> LabClass | None:
    """The demo class: two trainees (demo-class-01 and -02, the demo password) paired for the MUA lab."""

    def say(text):
        if stdout is not None:
            stdout.write(text)

    existing = LabClass.objects.filter(slug=classes.DEMO_SLUG).first()
    if existing is not None:
        say(f"Labs: the demo class '{existing.name}' is there already.")
        return existing
    if not settings.STRONGROOM_LAB_MODE:
        return None
    labs = [slug for slug in DEMO_LABS if catalogue.get(slug) and not catalogue.get(slug).unavailable()]
    try:
        created = classes.create_class(lab.trainer, name=DEMO_CLASS_NAME, labs=labs, trainees=2, demo=True)
    except ValidationError as exc:
        say(f"Labs: the demo class was not made: {' '.join(exc.messages)}")
        return None
    names = " and ".join(c.username for c in created.credentials)
    say(f"Labs: the demo class '{DEMO_CLASS_NAME}' ({names}, a pair for the Resource Guard lab), taught by the trainer.")
    return created.lab_class
