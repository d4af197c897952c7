"""Development tooling, not product: the local servers and stacks the tests and benchmarks start."""
