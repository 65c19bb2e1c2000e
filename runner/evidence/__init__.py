"""Evidence gates: the Prometheus client and the judging of measurements."""
