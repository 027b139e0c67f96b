"""Azure's naming rules for the inventory's resources, with the portal's messages."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

STORAGE_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
CONTAINER = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")
SPECIAL_CONTAINERS = {"$root", "$web", "$logs"}
# Elastic SAN, volume group, volume: lowercase letters, digits, hyphens, underscores; begin and end
# with a letter or digit; every hyphen/underscore between two letters or digits.
ELASTIC_SAN_PART = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")
POSTGRES_SERVER = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
SNAPSHOT = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$")
POSTGRES_DATABASE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
POSTGRES_USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.@-]{0,62}$")


def _error(field: str, message: str) -> ValidationError:
    return ValidationError({field: message})


def validate_storage_account_name(name: str, field: str = "name") -> None:
    if not STORAGE_ACCOUNT.match(name or ""):
        raise _error(
            field,
            "Storage account name must be between 3 and 24 characters in length and use numbers and "
            "lower-case letters only.",
        )


def validate_container_name(name: str, field: str = "name") -> None:
    if name in SPECIAL_CONTAINERS:
        return
    if not CONTAINER.match(name or "") or "--" in (name or ""):
        raise _error(
            field,
            "This name may only contain lowercase letters, numbers, and hyphens, and must begin with "
            "a letter or a number. Each hyphen must be preceded and followed by a non-hyphen "
            "character. The name must also be between 3 and 63 characters long.",
        )


def _validate_san_part(name: str, field: str, what: str, max_length: int) -> None:
    name = name or ""
    if not 3 <= len(name) <= max_length or not ELASTIC_SAN_PART.match(name):
        raise _error(
            field,
            f"The {what} name can only contain lowercase letters, numbers, hyphens and underscores, "
            "and must begin and end with a letter or a number. Each hyphen and underscore must be "
            "preceded and followed by an alphanumeric character. The name must be between 3 and "
            f"{max_length} characters long.",
        )


def validate_elastic_san_name(name: str, field: str = "name") -> None:
    _validate_san_part(name, field, "Elastic SAN", 24)


def validate_volume_group_name(name: str, field: str = "name") -> None:
    _validate_san_part(name, field, "volume group", 63)


def validate_volume_name(name: str, field: str = "name") -> None:
    _validate_san_part(name, field, "volume", 63)


def validate_volume_size(size_gib, field: str = "size_gib") -> None:
    if not isinstance(size_gib, int) or not 1 <= size_gib <= 65536:
        raise _error(field, "The volume size must be a whole number of GiB from 1 to 65536 (64 TiB).")


def validate_snapshot_name(name: str, field: str = "name") -> None:
    name = name or ""
    if not 1 <= len(name) <= 80 or not SNAPSHOT.match(name):
        raise _error(
            field,
            "The snapshot name must be 1 to 80 characters: letters, numbers, underscores, periods and "
            "hyphens; it must begin with a letter or number and end with a letter, number or underscore.",
        )


def validate_postgres_server_name(name: str, field: str = "name") -> None:
    name = name or ""
    if not 3 <= len(name) <= 63:
        raise _error(field, "Server name must be at least 3 characters and at most 63 characters.")
    if not POSTGRES_SERVER.match(name):
        raise _error(
            field,
            "Server name must only contain lowercase letters, numbers, and hyphens. The server name "
            "must not start or end in a hyphen.",
        )


def validate_postgres_database_name(name: str, field: str = "name") -> None:
    if not POSTGRES_DATABASE.match(name or ""):
        raise _error(
            field,
            "Database names are 1 to 63 characters: letters, numbers and underscores, starting with a "
            "letter or an underscore.",
        )
