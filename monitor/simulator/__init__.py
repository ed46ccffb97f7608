"""A real HTTP server speaking the Gemini REST API, with scripted faults: the test double of nbmon.

from monitor.simulator import SimulatorServer, parse_profile
with SimulatorServer(profile=parse_profile("mix:overloaded=0.4"), seed=1) as sim:
    client = genai.Client(api_key="test", http_options=types.HttpOptions(base_url=sim.url))
"""

from typing import TYPE_CHECKING

from monitor import _lazy

__all__ = [
    "BUILTIN_SCENARIOS",
    "HTTP_200_OUTCOMES",
    "OUTCOMES",
    "OVERRIDE_HEADER",
    "Draw",
    "ErrorReply",
    "FixedProfile",
    "HourlyProfile",
    "MixProfile",
    "Phase",
    "Profile",
    "ScenarioProfile",
    "SequenceProfile",
    "SimConfig",
    "SimOutcome",
    "Simulator",
    "SimulatorServer",
    "build_response",
    "error_reply",
    "noise_png",
    "parse_profile",
    "png_of_about",
    "png_size",
    "solid_png",
    "sse_chunks",
]

_EXPORTS = {
    "BUILTIN_SCENARIOS": "monitor.simulator.specs",
    "HTTP_200_OUTCOMES": "monitor.simulator.outcomes",
    "OUTCOMES": "monitor.simulator.outcomes",
    "OVERRIDE_HEADER": "monitor.simulator.handler",
    "Draw": "monitor.simulator.profiles",
    "ErrorReply": "monitor.simulator.errors",
    "FixedProfile": "monitor.simulator.profiles",
    "HourlyProfile": "monitor.simulator.profiles",
    "MixProfile": "monitor.simulator.profiles",
    "SimOutcome": "monitor.simulator.outcomes",
    "Phase": "monitor.simulator.profiles",
    "Profile": "monitor.simulator.profiles",
    "ScenarioProfile": "monitor.simulator.profiles",
    "SequenceProfile": "monitor.simulator.profiles",
    "SimConfig": "monitor.simulator.engine",
    "Simulator": "monitor.simulator.engine",
    "SimulatorServer": "monitor.simulator.server",
    "build_response": "monitor.simulator.responses",
    "error_reply": "monitor.simulator.errors",
    "noise_png": "monitor.simulator.images",
    "parse_profile": "monitor.simulator.specs",
    "png_of_about": "monitor.simulator.images",
    "png_size": "monitor.simulator.images",
    "solid_png": "monitor.simulator.images",
    "sse_chunks": "monitor.simulator.responses",
}
__getattr__, __dir__ = _lazy.exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from monitor.simulator.engine import SimConfig, Simulator
    from monitor.simulator.errors import ErrorReply, error_reply
    from monitor.simulator.handler import OVERRIDE_HEADER
    from monitor.simulator.images import noise_png, png_of_about, png_size, solid_png
    from monitor.simulator.outcomes import HTTP_200_OUTCOMES, OUTCOMES, SimOutcome
    from monitor.simulator.profiles import (
        Draw,
        FixedProfile,
        HourlyProfile,
        MixProfile,
        Phase,
        Profile,
        ScenarioProfile,
        SequenceProfile,
    )
    from monitor.simulator.responses import build_response, sse_chunks
    from monitor.simulator.server import SimulatorServer
    from monitor.simulator.specs import BUILTIN_SCENARIOS, parse_profile
