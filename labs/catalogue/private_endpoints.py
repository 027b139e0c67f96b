"""Lab: back up a storage account that sits in a virtual network to a vault that denies public access, through a
private endpoint whose DNS really answers.

Follows "Create and use private endpoints (v2 experience) for Azure Backup" (seed 003) with the labels of
reference §4. The trainee puts the sandbox's source account sbx<code>src in a virtual network, creates a new
vault (a vault's first private endpoint needs one that never protected anything), denies public access, sees
a backup refused, creates a private endpoint in the account's subnet with the private DNS zones integrated,
resolves the vault's name from the VNet (the private IP), and backs the account up through the endpoint.

Every check reads real state (the account's network, the vault's settings, the endpoint's connection, name
resolution inside the VNet — the same function the DNS responder and the network guard use —, backup jobs and
recovery points); every solve acts through the services as the trainee.
"""

from __future__ import annotations

from labs.catalogue import CheckResult, Document, Lab, Step, create_free_vault, first_free_name, register
from portal.inventory import dns
from portal.inventory.models import PrivateEndpoint, Subnet, VirtualNetwork
from protection import datasource_types, readiness
from protection.models import BackupInstance, BackupPolicy, Job, JobOperation, JobStatus, ProtectionState, RecoveryPoint
from vaults.models import BackupVault, PrivateEndpointConnection, PrivateEndpointConnectionState, PublicNetworkAccess
from vaults.networking import names

ADLS = datasource_types.ADLS
VNET_NAME = "vnet-workload"
VNET_PREFIX = "10.40.0.0/16"
SUBNET_NAME = "snet-workload"
SUBNET_PREFIX = "10.40.1.0/24"
VAULT_NAME = "bv-private"
ENDPOINT_NAME = "pe-backup"
POLICY_NAME = "adls-private"
_GONE = (ProtectionState.SOFT_DELETING, ProtectionState.SOFT_DELETED)


# --- what the checks look at -------------------------------------------------------------------------------


def _subnet(ctx) -> Subnet | None:
    """The subnet the source account reaches vaults from (None: the public network)."""
    account = ctx.world.source_account
    account.refresh_from_db(fields=["network_subnet"])
    return account.network_subnet


def _vault(ctx) -> BackupVault | None:
    """The lab's vault: the newest in the sandbox with a private endpoint connection, else the newest one that may
    still get a first endpoint (never protected, never a protection attempted)."""
    vaults = (BackupVault.objects.filter(resource_group__subscription=ctx.world.subscription,
                                         region=ctx.world.source_account.region)
              .select_related("region", "resource_group").order_by("-created_at"))
    with_endpoint = vaults.filter(private_endpoint_connections__isnull=False).first()
    if with_endpoint is not None:
        return with_endpoint
    return vaults.filter(has_ever_protected_item=False, protection_attempted=False).first()


def _connection(ctx, vault) -> PrivateEndpointConnection | None:
    """The vault's connection from an endpoint in the source account's subnet's VNet (Approved ones first)."""
    subnet = _subnet(ctx)
    if vault is None or subnet is None:
        return None
    found = (PrivateEndpointConnection.objects.filter(
        vault=vault, group_id=names.PRIMARY,
        private_endpoint__subnet__virtual_network_id=subnet.virtual_network_id)
        .select_related("private_endpoint__subnet__virtual_network").order_by("-created_at"))
    return next((c for c in found if c.state == PrivateEndpointConnectionState.APPROVED), None) or found.first()


def _instance(ctx, vault) -> BackupInstance | None:
    account = ctx.world.source_account
    return (BackupInstance.objects.filter(vault=vault, datasource_resource_id__iexact=account.resource_id)
            .exclude(protection_state__in=_GONE).order_by("-created_at").first()) if vault else None


# --- 1. the account in a virtual network -----------------------------------------------------------------


def check_network(ctx) -> CheckResult:
    subnet = _subnet(ctx)
    account = ctx.world.source_account
    if subnet is None:
        return CheckResult.missing(
            f"{account.name} is on the public network. Create the virtual network {VNET_NAME} ({VNET_PREFIX}) with "
            f"the subnet {SUBNET_NAME} ({SUBNET_PREFIX}) in {ctx.names.backup_group}, then open {account.name} > "
            f"Networking and choose that subnet.")
    return CheckResult.ok(f"{account.name} reaches vaults from {subnet.virtual_network.name}/{subnet.name} "
                          f"({subnet.address_prefix}).")


def solve_network(ctx) -> None:
    from portal.inventory import services as inv

    account = ctx.world.source_account
    vnet = VirtualNetwork.objects.filter(resource_group=ctx.world.backup_group, name__iexact=VNET_NAME).first()
    if vnet is None:
        vnet = inv.create_virtual_network(ctx.trainee, resource_group=ctx.world.backup_group, name=VNET_NAME,
                                          region=account.region, address_prefixes=VNET_PREFIX,
                                          subnet_name=SUBNET_NAME, subnet_prefix=SUBNET_PREFIX)
    inv.set_datasource_network(ctx.trainee, account, vnet.subnets.order_by("id").first())


# --- 2. a new vault ----------------------------------------------------------------------------------------


def check_vault(ctx) -> CheckResult:
    vault = _vault(ctx)
    if vault is None:
        return CheckResult.missing(
            f"There is no Backup vault in {ctx.world.source_account.region.display_name} that can get a first private "
            f"endpoint: a vault that protected something, or tried to, never can. Create a new vault {VAULT_NAME} in "
            f"{ctx.names.backup_group} and protect nothing in it yet.")
    return CheckResult.ok(f"The Backup vault {vault.name} can hold private endpoints.")


def solve_vault(ctx) -> None:
    create_free_vault(ctx, ctx.trainee, VAULT_NAME)


# --- 3. deny public network access -------------------------------------------------------------------------


def check_deny(ctx) -> CheckResult:
    vault = _vault(ctx)
    if vault is None:
        return CheckResult.missing("Do step 2 first: the lab's vault does not exist.")
    if vault.public_network_access != PublicNetworkAccess.DISABLED:
        return CheckResult.missing(f"{vault.name} still allows access from all networks: open its Networking blade, "
                                   "Public access tab, select Deny and Apply.")
    return CheckResult.ok(f"{vault.name} denies public network access: data moves to it only through approved "
                          "private endpoints.")


def solve_deny(ctx) -> None:
    from vaults.networking import services as net

    net.set_public_network_access(ctx.trainee, _vault(ctx), PublicNetworkAccess.DISABLED)


# --- 4. the private endpoint ------------------------------------------------------------------------------


def check_endpoint(ctx) -> CheckResult:
    vault, subnet = _vault(ctx), _subnet(ctx)
    if vault is None or subnet is None:
        return CheckResult.missing("Do steps 1 and 2 first.")
    connection = _connection(ctx, vault)
    vnet = subnet.virtual_network.name
    if connection is None:
        return CheckResult.missing(
            f"{vault.name} has no private endpoint in {vnet}, where {ctx.names.source_account} is. On its Networking "
            f"blade open Private access > + Private endpoint: target sub-resource AzureBackup, virtual network {vnet}, "
            f"subnet {subnet.name}, Integrate with private DNS zone Yes.")
    if connection.state != PrivateEndpointConnectionState.APPROVED:
        return CheckResult.missing(
            f"The private endpoint connection {connection.name} is {connection.get_state_display()}: only an Approved "
            "connection carries data. The vault's owner approves it on Private access (Approve, with a description); "
            "a Rejected or Disconnected one needs a new endpoint.")
    return CheckResult.ok(f"The private endpoint {connection.private_endpoint.name} in {vnet} is Approved, with "
                          f"private IPs {', '.join(connection.private_endpoint.private_ips[:3])}, …")


def solve_endpoint(ctx) -> None:
    from vaults.networking import services as net

    vault, subnet = _vault(ctx), _subnet(ctx)
    connection = _connection(ctx, vault)
    if connection is not None and connection.state == PrivateEndpointConnectionState.PENDING:
        net.approve_connection(ctx.trainee, connection, description="Approved for the lab's backups")
        return
    taken = {n.lower() for n in PrivateEndpoint.objects.filter(resource_group=ctx.world.backup_group)
             .values_list("name", flat=True)}
    name = first_free_name(ENDPOINT_NAME, lambda n: n.lower() in taken)
    net.create_private_endpoint(ctx.trainee, name=name, resource_group=ctx.world.backup_group, vault=vault,
                                subnet=subnet, integrate_dns=True, tags={})


# --- 5. the vault's name resolves privately --------------------------------------------------------------


def check_dns(ctx) -> CheckResult:
    vault, subnet = _vault(ctx), _subnet(ctx)
    connection = _connection(ctx, vault)
    if connection is None or not connection.carries_traffic:
        return CheckResult.missing("Do step 4 first: there is no approved private endpoint yet.")
    vnet = subnet.virtual_network
    name = names.data_fqdn(vault)
    answer = dns.resolve(vnet, name)
    endpoint_ips = set(connection.private_endpoint.private_ips)
    if answer.private and set(answer.addresses) & endpoint_ips:
        return CheckResult.ok(f"In {vnet.name}, {name} resolves to {answer.addresses[0]}, the endpoint's private IP "
                              f"(zone {answer.zone}).")
    shown = ", ".join(answer.addresses) or "nothing"
    return CheckResult.missing(
        f"In {vnet.name}, {name} resolves to {shown}, not to the endpoint's private IP, so backups would be refused "
        f"with PrivateDnsResolutionFailed. Open the endpoint's DNS configuration (vault > Networking > Private access): "
        f"add its A records to the private DNS zone {dns.backup_zone_name(vault.region)} and link the zone to "
        f"{vnet.name} — or create the endpoint again with Integrate with private DNS zone Yes.")


def solve_dns(ctx) -> None:
    from portal.inventory import services as inv

    vault, subnet = _vault(ctx), _subnet(ctx)
    connection = _connection(ctx, vault)
    endpoint, vnet = connection.private_endpoint, subnet.virtual_network
    for entry in names.endpoint_names(vault):
        zone = inv_zone(ctx, entry.zone)
        if not zone.links.filter(virtual_network=vnet).exists():
            inv.add_vnet_link(ctx.trainee, zone, name=f"link-{vnet.name}", virtual_network=vnet)
        ip = next(c["ip"] for c in endpoint.ip_configurations if c["fqdn"].lower() == entry.private_fqdn.lower())
        if not zone.records.filter(name__iexact=entry.record).exists():
            inv.add_a_record(ctx.trainee, zone, name=entry.record, ip=ip, private_endpoint=endpoint)


def inv_zone(ctx, zone_name: str):
    from portal.inventory import services as inv
    from portal.inventory.models import PrivateDnsZone

    zone = PrivateDnsZone.objects.filter(resource_group=ctx.world.backup_group, name__iexact=zone_name).first()
    return zone or inv.create_private_dns_zone(ctx.trainee, resource_group=ctx.world.backup_group, name=zone_name)


# --- 6. back up through the endpoint -----------------------------------------------------------------------


def check_backup(ctx) -> CheckResult:
    vault = _vault(ctx)
    instance = _instance(ctx, vault)
    if instance is None:
        return CheckResult.missing(
            f"{ctx.names.source_account} is not protected in {vault.name if vault else 'the lab vault'} yet: create an "
            f"Azure Data Lake Storage policy there, configure protection of {ctx.names.source_account} (Assign missing "
            "roles if readiness asks), then Backup now.")
    point = (RecoveryPoint.objects.filter(instance=instance, state=RecoveryPoint.State.COMPLETED)
             .order_by("-recovery_point_time").first())
    if point is not None:
        return CheckResult.ok(f"{instance.name} has a recovery point, taken through the private endpoint while "
                              f"{vault.name} denies public access.")
    job = Job.objects.filter(instance=instance, operation=JobOperation.BACKUP).order_by("-start_time").first()
    if job is not None and job.status in (JobStatus.IN_PROGRESS, JobStatus.CANCELLING):
        return CheckResult.missing(f"The backup of {instance.name} is still running: check again when its job has "
                                   "completed (Backup jobs).")
    if job is not None and job.status == JobStatus.FAILED:
        return CheckResult.missing(f"The backup of {instance.name} failed: {job.error_code}: {job.error_message}")
    return CheckResult.missing(f"{instance.name} has no recovery point yet: select Backup now on it and wait for "
                               "the job.")


def solve_backup(ctx) -> None:
    from protection.backups import services as backups
    from protection.instances import services as instance_services
    from protection.policies import services as policy_services

    vault, account = _vault(ctx), ctx.world.source_account
    instance = _instance(ctx, vault)
    if instance is None:
        policy = BackupPolicy.objects.filter(vault=vault, datasource_type=ADLS).order_by("name").first()
        if policy is None:
            policy = policy_services.create_policy(ctx.trainee, vault=vault, name=POLICY_NAME, datasource_type=ADLS,
                                                   spec=policy_services.default_spec(ADLS))
        datasource = readiness.Datasource(ADLS, account.resource_id, account.name)
        if readiness.missing_needs(vault.identity, datasource):
            instance_services.assign_missing_roles(ctx.trainee, vault=vault, datasources=[datasource],
                                                   level=readiness.SCOPE_RESOURCE)
        selection = instance_services.DatasourceSelection(account.resource_id, account.name, all_containers=True)
        [instance] = instance_services.configure_protection(ctx.trainee, vault=vault, policy=policy,
                                                            selections=[selection])
        ctx.job_started(Job.objects.get(instance=instance, operation=JobOperation.CONFIGURE_PROTECTION))
        instance.refresh_from_db()
    ctx.job_started(backups.backup_now(ctx.trainee, instance, retention_rule="Default"))


_NETWORK = """
The document's workloads run in a virtual network; a vault that denies public access takes data only from
networks that hold an approved private endpoint. First put the source account in a network of its own.

1. **Virtual networks** > **+ Create**: name **{vnet}**, resource group **{backup_group}**, region East US,
   address space `{vnet_prefix}`, first subnet **{subnet}** `{subnet_prefix}`.
2. Open **{source_account}** > **Networking**, choose **{vnet} / {subnet}** and **Save**.
"""

_VAULT = """
A vault's first private endpoint can only be created while the vault has never protected an item, nor tried
to: create a new one for this lab.

1. **Backup vaults** > **+ Create**: name **{vault}**, resource group **{backup_group}**, region East US.
2. Do not configure protection in it yet.
"""

_DENY = """
1. Open **{vault}** > **Networking** > **Public access**.
2. Select **Deny** and **Apply**. You can still manage the vault (policies, properties, access control), but
   data no longer moves between it and networks without an approved private endpoint.
"""

_ENDPOINT = """
1. On **{vault}** > **Networking** > **Private access** select **+ Private endpoint**.
2. **Basics**: name **{endpoint}**, resource group **{backup_group}**. **Resource**: target sub-resource
   **AzureBackup**. **Virtual Network**: **{vnet}**, subnet **{subnet}** (the private IPs are allocated
   dynamically). **DNS**: *Integrate with private DNS zone* **Yes**. **Review + create**.
3. As a Contributor of the vault your endpoint is approved at once; anyone else's waits, *Pending*, until the
   vault's owner selects it on **Private access** and **Approve**s it.
"""

_DNS = """
A VM in {vnet} must resolve the vault's name to the endpoint's private IP, or its data would go to the public
address the vault now refuses.

1. Open **{vnet}**: its page shows the VNet's **DNS resolver** and a `dig` line to try. With `make run`, run
   `dig @<resolver> -p 5353 <the vault's name>` (the name is in the endpoint's **DNS configuration** on the
   vault's **Private access** tab): the answer is a CNAME to the `privatelink` name, then the private IP.
2. Had you chosen *Integrate with private DNS zone* **No**, add the A records the DNS configuration lists to
   the zone `privatelink.eus.backup.windowsazure.com` and link the zone to {vnet}.
"""

_BACKUP = """
1. In **{vault}** create a backup policy for **Azure Data Lake Storage**.
2. **Configure protection** of **{source_account}** in {vault} (select **Assign missing roles** if backup
   readiness asks, then **Revalidate**).
3. On the backup instance select **Backup now** and wait for the job: the data goes through {endpoint}.
"""


def _filled(text: str) -> str:
    for key, value in {"{vnet}": VNET_NAME, "{vnet_prefix}": VNET_PREFIX, "{subnet}": SUBNET_NAME,
                       "{subnet_prefix}": SUBNET_PREFIX, "{vault}": VAULT_NAME, "{endpoint}": ENDPOINT_NAME}.items():
        text = text.replace(key, value)
    return text


LAB = register(Lab(
    slug="private-endpoints",
    title="Back up through a private endpoint",
    summary=("Deny a vault's public network access, create a private endpoint in the workload's virtual network, "
             "resolve the vault's name to its private IP, and back up through it."),
    learn=(
        "A vault that denies public access moves data only with networks that hold an approved private endpoint.",
        "A vault's first private endpoint needs a vault that never protected anything (nor tried to).",
        "An endpoint is approved at once for the vault's owner or contributor; anyone else's waits for approval.",
        "Integrating with private DNS zones writes the A records that make the vault's name resolve privately.",
        "Management operations stay allowed while public access is denied.",
    ),
    minutes=25,
    document=Document("Create and use private endpoints (v2 experience) for Azure Backup", "003_90991c521c94fc7b.txt"),
    order=60,
    protects=("source_account",),
    steps=(
        Step("network", "Put the source account in a virtual network", _filled(_NETWORK), check_network,
             solve_network, hints=(
                 "Virtual networks > + Create; then the storage account's Networking blade.",
                 f"The subnet {SUBNET_PREFIX} must lie inside the address space {VNET_PREFIX}.")),
        Step("vault", "Create a vault for private access", _filled(_VAULT), check_vault, solve_vault,
             hints=("Backup vaults > + Create, in East US, in {backup_group}.",)),
        Step("deny", "Deny public network access", _filled(_DENY), check_deny, solve_deny,
             hints=(f"{VAULT_NAME} > Networking > Public access > Deny > Apply.",)),
        Step("endpoint", "Create and approve a private endpoint", _filled(_ENDPOINT), check_endpoint, solve_endpoint,
             hints=(f"{VAULT_NAME} > Networking > Private access > + Private endpoint.",
                    f"The endpoint must be in {VNET_NAME}, where {{source_account}} is, not in another network.")),
        Step("dns", "Resolve the vault's name privately", _filled(_DNS), check_dns, solve_dns,
             hints=("The endpoint's DNS configuration lists each name, its IP and its zone.",)),
        Step("backup", "Back up through the endpoint", _filled(_BACKUP), check_backup, solve_backup,
             hints=("Create the policy in the lab's vault, then Configure protection, then Backup now.",)),
    ),
))
