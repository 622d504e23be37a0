"""Tests of the module as a system: workers, PostgreSQL, the roster feed,
real clients, the wheel, the audit page, the admin API, the command line."""
