"""Controllers: level-triggered reconcile loops, one module per controller,
all on the skeleton in `base.py`, run by `manager.ControllerManager`."""
