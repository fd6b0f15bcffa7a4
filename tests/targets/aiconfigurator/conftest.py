"""The fixture repository's own test files are data for these tests, not tests of this project."""

collect_ignore_glob = ["fixtures/*"]
