"""Locust users for bench/load_class.py: a class of trainees and their instructor (not a test; 127.0.0.1 only).

bench/load_class.py writes the class's accounts to the JSON file named by LOAD_ACCOUNTS and runs
``locust --headless`` on this file. Each trainee signs in with the password of its seat and works through
its lab page (and the part of it the page polls every 3 s), the labs list, Backup instances, Backup jobs,
Backup vaults and the page of a job from the jobs list; the instructor keeps the class page open (its
htmx part every 5 s, the whole page now and then). The run stops after LOAD_MAX_REQUESTS requests or
locust's ``--run-time``, whichever comes first.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
from urllib.parse import urlsplit

from locust import HttpUser, between, events, task

ACCOUNTS = json.load(open(os.environ["LOAD_ACCOUNTS"])) if os.environ.get("LOAD_ACCOUNTS") else {}
MAX_REQUESTS = int(os.environ.get("LOAD_MAX_REQUESTS", "0") or 0)
THINK = tuple(float(x) for x in os.environ.get("LOAD_THINK", "1,3").split(","))  # seconds between a trainee's clicks
_seats = itertools.count()
_sent = itertools.count(1)
_JOB_LINK = re.compile(r'href="(/backup/jobs/[0-9a-f-]{36}/)"')
_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@events.init.add_listener
def _only_localhost(environment, **_kwargs):
    host = urlsplit(environment.host or "").hostname
    if host not in ("127.0.0.1", "localhost"):
        raise SystemExit(f"This load test runs against 127.0.0.1 only, not {environment.host!r}.")


_environment: dict = {}
_samples: list = []


@events.init.add_listener
def _keep_environment(environment, **_kwargs):
    _environment["env"] = environment


@events.request.add_listener
def _record(name, response_time, exception=None, **_kwargs):
    """Keep every request's time (LOAD_SAMPLES gets them at the end); stop after LOAD_MAX_REQUESTS."""
    from locust.runners import STATE_STOPPED, STATE_STOPPING

    _samples.append((name, round(response_time, 1), exception is not None))
    if MAX_REQUESTS and next(_sent) == MAX_REQUESTS:
        runner = _environment["env"].runner
        if runner is not None and runner.state not in (STATE_STOPPING, STATE_STOPPED):
            runner.quit()


@events.quitting.add_listener
def _write_samples(**_kwargs):
    if os.environ.get("LOAD_SAMPLES"):
        with open(os.environ["LOAD_SAMPLES"], "w") as f:
            json.dump(_samples, f)


class _SignedIn(HttpUser):
    abstract = True

    def sign_in(self, username: str, password: str) -> None:
        page = self.client.get("/signin/", name="sign-in page")
        token = _CSRF.search(page.text)
        with self.client.post("/signin/", name="sign in", allow_redirects=False, catch_response=True,
                              data={"username": username, "password": password,
                                    "csrfmiddlewaretoken": token.group(1) if token else ""},
                              headers={"Referer": f"{self.host}/signin/"}) as response:
            if response.status_code != 302:
                response.failure(f"sign-in of {username} answered {response.status_code}")

    def page(self, path: str, name: str, **kwargs):
        """GET a page; one that sends the user back to the sign-in page counts as an error."""
        with self.client.get(path, name=name, catch_response=True, **kwargs) as response:
            if response.ok and "/signin/" in response.url:
                response.failure(f"{path} sent a signed-in user to the sign-in page")
            return response


class Trainee(_SignedIn):
    weight = 20
    wait_time = between(*THINK)

    def on_start(self):
        seats = ACCOUNTS.get("trainees", [])
        account = seats[next(_seats) % len(seats)]
        self.lab_path = ACCOUNTS["lab_path"]
        self.sign_in(account["username"], account["password"])

    @task(4)
    def lab_page(self):
        self.page(self.lab_path, "lab page")

    @task(6)
    def lab_progress(self):  # the part of the lab page that polls every 3 s
        self.page(self.lab_path, "lab page (htmx part)", headers={"HX-Request": "true"})

    @task(1)
    def lab_list(self):
        self.page("/labs/", "labs list")

    @task(2)
    def instances(self):
        self.page("/backup/instances/", "Backup instances")

    @task(2)
    def vaults(self):
        self.page("/vaults/", "Backup vaults")

    @task(3)
    def jobs_and_one_job(self):
        listing = self.page("/backup/jobs/", "Backup jobs")
        links = _JOB_LINK.findall(listing.text or "")
        if links:
            self.page(random.choice(links), "a job")


class Instructor(_SignedIn):
    fixed_count = 1
    wait_time = between(4, 5)

    def on_start(self):
        self.class_path = ACCOUNTS["class_path"]
        self.sign_in(ACCOUNTS["instructor"]["username"], ACCOUNTS["instructor"]["password"])

    @task(5)
    def class_live(self):  # the class page's htmx part, every 5 s
        self.page(self.class_path, "class page (htmx part)", headers={"HX-Request": "true"})

    @task(1)
    def class_page(self):
        self.page(self.class_path, "class page")
