"""Integration-test harness: throwaway PostgreSQL + Synapse processes and a tiny Matrix client."""
