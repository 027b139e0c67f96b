"""The fault drills behind `make drills` (scripts/drills.py is the command; its docstring says what runs).

common: logging, ports, waiting and the limits · servers: the drills' own redis-server and PostgreSQL ·
fleet: the supervised workers and beat · lab: what the drills back up · outcomes: waiting for jobs and
judging what they left · process_faults / data_faults: the drills · report: the table · main: start-up,
the run and the clean-up.
"""
