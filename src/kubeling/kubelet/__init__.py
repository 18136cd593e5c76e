"""The node agent: registers its Node, heartbeats through a Lease, runs pods."""
