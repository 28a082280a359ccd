"""Deployments: the S3 object store for regions on one machine."""
