"""Azure's naming rules for storage accounts, containers, Elastic SAN parts and PostgreSQL servers."""

import pytest
from django.core.exceptions import ValidationError

from portal.inventory import naming, services

OK, BAD = True, False

STORAGE_ACCOUNTS = [
    ("abc", OK), ("contosolab2024", OK), ("a" * 24, OK),
    ("ab", BAD), ("a" * 25, BAD), ("Contoso", BAD), ("con-toso", BAD), ("con_toso", BAD), ("contoso lab", BAD),
    ("", BAD), ("café", BAD),
]
CONTAINERS = [
    ("abc", OK), ("my-container-1", OK), ("1abc", OK), ("a" * 63, OK), ("$web", OK), ("$root", OK),
    ("ab", BAD), ("a" * 64, BAD), ("-abc", BAD), ("abc-", BAD), ("ab--c", BAD), ("Abc", BAD), ("a_bc", BAD),
    ("a.bc", BAD), ("a bc", BAD), ("$other", BAD),
]
SAN_PARTS = [
    ("abc", OK), ("esan-lab", OK), ("vg_lab_1", OK), ("a1-b2_c3", OK),
    ("ab", BAD), ("-abc", BAD), ("abc-", BAD), ("_abc", BAD), ("abc_", BAD), ("a--b", BAD), ("a-_b", BAD),
    ("ABC", BAD), ("a.bc", BAD), ("a bc", BAD),
]
POSTGRES_SERVERS = [
    ("pg-lab", OK), ("abc", OK), ("a" * 63, OK), ("a1-2-3", OK),
    ("ab", BAD), ("a" * 64, BAD), ("-pg", BAD), ("pg-", BAD), ("PG", BAD), ("pg_lab", BAD), ("pg.lab", BAD),
]


def _accepts(validator, name) -> bool:
    try:
        validator(name)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("name, ok", STORAGE_ACCOUNTS)
def test_it_applies_storage_account_name_rules(name, ok):
    assert _accepts(naming.validate_storage_account_name, name) is ok


@pytest.mark.parametrize("name, ok", CONTAINERS)
def test_it_applies_container_name_rules(name, ok):
    assert _accepts(naming.validate_container_name, name) is ok


@pytest.mark.parametrize("name, ok", SAN_PARTS)
def test_it_applies_elastic_san_volume_group_and_volume_name_rules(name, ok):
    assert _accepts(naming.validate_elastic_san_name, name) is ok
    assert _accepts(naming.validate_volume_group_name, name) is ok
    assert _accepts(naming.validate_volume_name, name) is ok


def test_it_limits_elastic_san_names_to_24_and_groups_and_volumes_to_63():
    assert not _accepts(naming.validate_elastic_san_name, "a" * 25)
    assert _accepts(naming.validate_volume_group_name, "a" * 63)
    assert not _accepts(naming.validate_volume_name, "a" * 64)


@pytest.mark.parametrize("size, ok", [(1, OK), (65536, OK), (0, BAD), (65537, BAD), (-1, BAD), (1.5, BAD)])
def test_it_applies_volume_size_limits(size, ok):
    assert _accepts(naming.validate_volume_size, size) is ok


@pytest.mark.parametrize("name, ok", POSTGRES_SERVERS)
def test_it_applies_postgres_server_name_rules(name, ok):
    assert _accepts(naming.validate_postgres_server_name, name) is ok


def test_it_keeps_storage_account_names_globally_unique(lab):
    """GIVEN an account named X in one resource group
    WHEN anyone creates X again, in any group or subscription
    THEN Azure's 'already taken' message is on the name field and no second row exists."""
    services.create_storage_account(lab.trainer, resource_group=lab.lab_group, name="uniqueacct", region=lab.region)
    with pytest.raises(ValidationError) as caught:
        services.create_storage_account(lab.trainer, resource_group=lab.target_group, name="uniqueacct", region=lab.region)
    assert caught.value.message_dict["name"] == ["The storage account named uniqueacct is already taken."]


def test_it_refuses_a_bad_name_through_the_service_and_creates_nothing(lab, settings):
    with pytest.raises(ValidationError) as caught:
        services.create_storage_account(lab.trainer, resource_group=lab.lab_group, name="Bad_Name", region=lab.region)
    assert "between 3 and 24 characters" in caught.value.message_dict["name"][0]
    assert not (settings.STRONGROOM_DATA_ROOT / "storage").exists() or not any((settings.STRONGROOM_DATA_ROOT / "storage").iterdir())


def test_it_keeps_container_names_unique_per_account(lab, account):
    services.create_container(lab.trainer, account, name="logs")
    with pytest.raises(ValidationError) as caught:
        services.create_container(lab.trainer, account, name="logs")
    assert "already exists" in caught.value.message_dict["name"][0]
