# The fixture repository holds files shaped like VeOmni tests: data, never collected.
collect_ignore_glob = ["fixtures/*"]
