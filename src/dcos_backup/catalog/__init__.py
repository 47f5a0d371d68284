"""Backup metadata and archive storage backends (local directory, S3). Nothing else touches backup files."""
