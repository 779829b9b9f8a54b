"""The region API: the seeds' HTTP endpoints over one region's Redis."""
