"""Fakes of the SaaS boundaries (GitHub REST) that real clients talk to in tests."""
