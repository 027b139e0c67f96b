"""Exceptions raised by the vault store engine."""


class StoreError(Exception):
    """Base class of every error the engine raises on purpose."""


class ChunkerUnavailable(StoreError):
    """The compiled FastCDC extension is missing: the engine refuses to run."""


class NotFound(StoreError):
    """An object, snapshot or chunk does not exist."""


class RetentionError(StoreError):
    """An operation was refused because an object is under retention."""

    def __init__(self, name, until=None, mode=None, message=None):
        self.name = name
        self.until = until
        self.mode = mode
        if message is None:
            message = f"object {name!r} is under {mode} retention until {until.isoformat() if until else '?'}; refusing to delete or overwrite it"
        super().__init__(message)


class StorageFull(StoreError):
    """The store's storage has no space left (a full disk or quota; an S3 service that answered
    "insufficient storage"). ``location`` says which store. A backup that meets it removes the
    packs it wrote and did not index, so the space it had taken is free again."""

    def __init__(self, location, message=None):
        self.location = location
        super().__init__(message or f"the storage of the store at {location} is full")


class ImmutabilityUnsupported(StoreError):
    """The backend cannot enforce retention (e.g. an S3 bucket without Object Lock), so it
    cannot host an immutable store."""


class LockError(StoreError):
    """The store is locked by another process (``holders`` describes who), or our lock was lost."""

    def __init__(self, message, holders=()):
        self.holders = list(holders)
        super().__init__(message)


class IntegrityError(StoreError):
    """Authenticated decryption or a hash check failed: the data was tampered with or damaged."""


class KeyError_(StoreError):
    """The platform key does not unwrap this store's data key."""


class Cancelled(StoreError):
    """The operation was cancelled through its cancel hook; nothing was committed."""


class DamageError(StoreError):
    """A restore met missing or corrupt data.

    ``items`` lists the damaged items by name (paths inside the recovery point, ``<stream>``
    or ``<volume>``); ``chunks`` lists the damaged chunk ids (hex); everything else was restored.
    """

    def __init__(self, items, chunks=(), message=None):
        self.items = sorted(set(items))
        self.chunks = sorted(set(chunks))
        if message is None:
            shown = ", ".join(self.items[:20]) + (" ..." if len(self.items) > 20 else "")
            message = f"{len(self.items)} damaged item(s): {shown}"
        super().__init__(message)
