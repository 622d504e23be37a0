"""Tests that start no process: the binding, the adapter on fakes, the engine
against the reference model, the command line on the embedded store."""
