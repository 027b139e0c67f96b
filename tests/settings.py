"""The test suite's settings: the portal's own, in lab mode (the mode the browser tests prove the pages in,
under the same Content-Security-Policy as production), with a known demo password for the seeded users."""

import os

os.environ.setdefault("STRONGROOM_MODE", "lab")
os.environ.setdefault("STRONGROOM_DEMO_PASSWORD", "lab-demo-password-for-tests")

from portal.settings import *  # noqa: E402,F401,F403

# Seeding the lab hashes six or seven passwords per test: a fast hasher keeps the suite quick. Production
# keeps Django's PBKDF2 (the sign-in tests check behaviour, not the hasher).
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
