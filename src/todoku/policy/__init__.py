"""Policy: who may log in, who may send as whom, which recipients are ours, and relay control."""
