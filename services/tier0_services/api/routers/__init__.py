"""One router per resource of the seeds' endpoint tables."""
