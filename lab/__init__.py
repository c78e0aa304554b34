"""Video Streaming Pipeline Lab: the real API, producer and Spark streaming code behind the notebooks."""
