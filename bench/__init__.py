"""Load generators and side-by-side benchmarks against peer servers."""
