"""A drill after every backup: what Barman's post-backup hook is told, the per-server lock, the drill it runs."""
