"""A simulated Asterisk 22 speaking AMI, for tests, demos and load tests.

    from dialer.simulator import PbxSimulator, Scenario
    sim = PbxSimulator(clock=clock, users={"dialer": "secret"}, monitor_dir=Path("monitor"))
    await sim.start("127.0.0.1", 5038)

See docs/simulator.md for the behaviours and what is (not) modelled.
"""

from dialer.simulator.behaviour import Behaviour, Scenario, behaviour_for_digit
from dialer.simulator.server import PbxSimulator

__all__ = ["Behaviour", "PbxSimulator", "Scenario", "behaviour_for_digit"]
