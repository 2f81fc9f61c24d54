"""Every check a restore runs, in the order it runs them; each outcome goes into the restore's record.

- preflight: backup metadata, verify-backup, an incremental's chain, WAL continuity (before any copy)
- reached: the target was reached by the server's own account, on the expected timeline
- data: amcheck finds the restored table sound; its fingerprint equals the source's at the target
"""
