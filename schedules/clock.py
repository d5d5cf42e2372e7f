"""Re-export of `common.clock`, kept while other branches still import the clock from here
(tests converted to the VirtualClock in parallel); new code imports `common.clock`."""

from common.clock import Clock, ScaledClock, SystemClock, VirtualClock

__all__ = ["Clock", "ScaledClock", "SystemClock", "VirtualClock"]
