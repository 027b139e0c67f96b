"""ARM's resource envelope and list pages.

A tracked resource is ``{id, name, type, location, tags, systemData, properties}``; a child (proxy)
resource has no location or tags. Lists answer ``{"value": [...], "nextLink": ...}`` with an opaque
``$skiptoken`` cursor: keyset over the primary key, so page 10,000 costs what page 1 costs.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DataError
from django.db.models import Q

from portal.api.errors import ArmError

SKIP_TOKEN = "$skiptoken"


def timestamp(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def system_data(created_at: dt.datetime | None, modified_at: dt.datetime | None = None) -> dict:
    data = {}
    if created_at:
        data["createdAt"] = timestamp(created_at)
    if modified_at:
        data["lastModifiedAt"] = timestamp(modified_at)
    return data


def tracked(obj, type_name: str, properties: dict, **extra) -> dict:
    """The envelope of a tracked resource (``obj`` has name, resource_id, region, tags, created_at)."""
    body = {
        "id": obj.resource_id,
        "name": obj.name,
        "type": type_name,
        "location": obj.region_id,
        "tags": dict(obj.tags or {}),
    }
    created = getattr(obj, "created_at", None)
    if created:
        body["systemData"] = system_data(created)
    body.update({k: v for k, v in extra.items() if v is not None})
    body["properties"] = properties
    return body


def proxy(resource_id: str, name: str, type_name: str, properties: dict, **extra) -> dict:
    body = {"id": resource_id, "name": name, "type": type_name}
    body.update({k: v for k, v in extra.items() if v is not None})
    body["properties"] = properties
    return body


def page_size() -> int:
    return int(getattr(settings, "STRONGROOM_API_PAGE_SIZE", 200))


def _encode(value) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


def _decode(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise ArmError(400, "InvalidSkipToken", "The $skiptoken is not one this API gave out; start the list again without it.", target=SKIP_TOKEN) from None


def _key_text(value) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _after(fields: list[str], values: list, descending: bool) -> Q:
    """Rows after ``values`` in the order of ``fields`` (a keyset: f0 < v0, or f0 = v0 and f1 < v1, ...).
    The leading bound (f0 <= v0) is repeated outside the OR so that the index on f0 starts the scan there:
    page 5,000 then costs what page 1 costs."""
    op = "lt" if descending else "gt"
    condition = Q()
    for i, name in enumerate(fields):
        step = Q(**{f: v for f, v in zip(fields[:i], values[:i])}) & Q(**{f"{name}__{op}": values[i]})
        condition |= step
    if len(fields) > 1:
        condition &= Q(**{f"{fields[0]}__{op}e": values[0]})
    return condition


def _cursor(token: str, fields: list[str]) -> list:
    after = _decode(token)
    if len(fields) == 1:
        return [after]
    try:
        values = json.loads(after)
    except ValueError:
        values = None
    if not isinstance(values, list) or len(values) != len(fields):
        raise ArmError(400, "InvalidSkipToken", "The $skiptoken is not valid; start the list again without it.", target=SKIP_TOKEN)
    return values


def page(request, queryset, serialize, *, size: int | None = None, order: str | tuple[str, ...] = "pk",
         prepare=None) -> dict:
    """One page of ``queryset`` in ``order`` (a unique, indexed field, or a tuple of fields that is
    unique together, all in one direction; "-field" for descending), serialized, with the
    ``nextLink`` that continues after its last item. ``prepare(rows)``, when given, runs once on the
    page's rows before they are serialized (to load what they need in one query, not one per row)."""
    size = size or page_size()
    orders = (order,) if isinstance(order, str) else tuple(order)
    fields = [o.lstrip("-") for o in orders]
    descending = orders[0].startswith("-")
    if any(o.startswith("-") != descending for o in orders):
        raise ValueError("A keyset order runs in one direction.")
    token = request.GET.get(SKIP_TOKEN)
    if token:
        values = _cursor(token, fields)
        try:
            queryset = queryset.filter(_after(fields, values, descending))
            rows = list(queryset.order_by(*orders)[: size + 1])
        except (ValueError, TypeError, ArithmeticError, ValidationError, DataError):
            raise ArmError(400, "InvalidSkipToken", "The $skiptoken is not valid; start the list again without it.", target=SKIP_TOKEN) from None
    else:
        rows = list(queryset.order_by(*orders)[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    if prepare is not None:
        prepare(rows)
    body = {"value": [serialize(row) for row in rows]}
    if more:
        params = request.GET.copy()
        last = [getattr(rows[-1], f) for f in fields]
        params[SKIP_TOKEN] = _encode(last[0] if len(fields) == 1 else json.dumps([_key_text(v) for v in last]))
        body["nextLink"] = request.build_absolute_uri(request.path) + "?" + urlencode(sorted(params.items()))
    return body
