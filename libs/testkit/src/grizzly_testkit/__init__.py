"""What the tests and the benchmark share to run the stack for real: Redis and Kafka, the services as processes."""
