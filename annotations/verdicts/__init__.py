"""Deploy verdicts: each deploy judged by the metrics it names (and its service's defaults)
once its `verify_after` has passed, on the node holding the verdicts lock."""
