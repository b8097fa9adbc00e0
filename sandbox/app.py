"""The sandbox's ASGI app: every simulated API under its own prefix, plus the `/_sandbox` control routes.

    /prescrypto/...                  the Prescrypto API (sandbox.prescrypto)
    /profiles/...                    the profiles API (sandbox.profiles)
    /gauges/...                      the gauges API (sandbox.gauges)
    /particle/...                    the Particle API (sandbox.particle)
    POST   /_sandbox/reset           {"patients": N, "medics": M, "seed": S, "noise": B}, each optional:
                                     fresh data, no faults, switches and stats back to their defaults. Every
                                     API gets N patients, the same N people rendered its own way (person i is
                                     the same human in every source); M medics are Prescrypto's medics and
                                     the profiles API's doctors. With noise, each API's copy of a person has
                                     its own errors, and twins, household members and namesakes follow the N
                                     people (sandbox.noise)
    GET    /_sandbox/faults          the rules, with how often each matched and fired
    POST   /_sandbox/faults          add rules (see sandbox.faults)
    DELETE /_sandbox/faults          remove every rule
    GET    /_sandbox/stats           request counts (see sandbox.stats); DELETE zeroes them
    /_sandbox/prescrypto/...         Prescrypto switches and record staging
    /_sandbox/profiles/...           profiles switches and record staging
    /_sandbox/gauges/...             gauges switches, patient and reading staging
    /_sandbox/particle/...           Particle switches and record staging

The control routes need no token: they are not part of any vendor API.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from sandbox import gauges, particle, prescrypto, profiles
from sandbox.faults import FaultMiddleware, Faults
from sandbox.noise import hard_negatives, noisy
from sandbox.people import Person, generate_clinicians, generate_people
from sandbox.stats import RequestStats, StatsMiddleware
from sandbox.store import paused_gc


@dataclass
class Sandbox:
    """Everything the simulated APIs serve, and what the control routes change."""

    patients: int = 250
    medics: int = 40
    seed: int = 1
    noise: bool = False  # identity noise and hard negatives (sandbox.noise)
    faults: Faults = field(default_factory=Faults)
    stats: RequestStats = field(default_factory=RequestStats)
    prescrypto: prescrypto.PrescryptoState = field(default_factory=prescrypto.PrescryptoState)
    profiles: profiles.ProfilesState = field(default_factory=profiles.ProfilesState)
    gauges: gauges.GaugesState = field(default_factory=gauges.GaugesState)
    particle: particle.ParticleState = field(default_factory=particle.ParticleState)

    def reset(
        self, patients: int | None = None, medics: int | None = None, seed: int | None = None, noise: bool = False
    ) -> None:
        """Regenerate the data (sizes and seed default to the current ones; noise is off unless asked for) and
        forget faults and stats.

        Prescrypto's data is made here; the other APIs render the same people when they are first called.
        """
        self.patients = self.patients if patients is None else patients
        self.medics = self.medics if medics is None else medics
        self.seed = self.seed if seed is None else seed
        self.noise = noise
        with paused_gc():
            people = people_of(self.patients, self.seed, self.noise)
            clinicians = generate_clinicians(self.medics, self.seed)

            def of(api: str) -> list[Person]:
                return noisy(people, api, self.seed) if self.noise else people

            self.prescrypto.load(of("prescrypto"), clinicians, self.seed)
            self.profiles.load(of("profiles"), clinicians, self.seed)
            self.gauges.load(of("gauges"), self.seed)
            self.particle.load(of("particle"), self.seed)
        self.faults.clear()
        self.stats.clear()


def people_of(patients: int, seed: int, noise: bool) -> list[Person]:
    """The people every API renders: the generated ones, then (with noise) their hard negatives."""
    people = generate_people(patients, seed)
    return people + [p for _, _, p in hard_negatives(people, seed)] if noise else people


def create_app(patients: int = 250, medics: int = 40, seed: int = 1) -> ASGIApp:
    """The whole sandbox as one ASGI app, its data generated from `seed`."""
    sandbox = Sandbox(patients=patients, medics=medics, seed=seed)
    sandbox.reset()
    routes = [
        Mount("/prescrypto", routes=prescrypto.api_routes(sandbox.prescrypto)),
        Mount("/profiles", routes=profiles.api_routes(sandbox.profiles)),
        Mount("/gauges", routes=gauges.api_routes(sandbox.gauges)),
        Mount("/particle", routes=particle.api_routes(sandbox.particle)),
        Mount(
            "/_sandbox",
            routes=[
                *_control_routes(sandbox),
                Mount("/prescrypto", routes=prescrypto.control_routes(sandbox.prescrypto)),
                Mount("/profiles", routes=profiles.control_routes(sandbox.profiles)),
                Mount("/gauges", routes=gauges.control_routes(sandbox.gauges)),
                Mount("/particle", routes=particle.control_routes(sandbox.particle)),
            ],
        ),
    ]
    # Faults and stats wrap the Starlette app rather than sit in its middleware list: Starlette would wrap
    # `send`, and dropping a connection needs the server's own.
    return StatsMiddleware(FaultMiddleware(Starlette(routes=routes), sandbox.faults), sandbox.stats)


def _control_routes(sandbox: Sandbox) -> list[Route]:
    async def reset(request: Request) -> Response:
        try:
            body = await _body(request) or {}
        except ValueError as exc:
            return JSONResponse({"message": f"invalid JSON: {exc}"}, 400)
        sizes = {k: body.get(k) for k in ("patients", "medics", "seed")} if isinstance(body, dict) else {}
        noise = body.get("noise") if isinstance(body, dict) else None
        if (
            not isinstance(body, dict)
            or not all(v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0) for v in sizes.values())
            or not (noise is None or isinstance(noise, bool))
        ):
            return JSONResponse({"message": "expected {patients, medics, seed}: integers >= 0, noise: a boolean"}, 400)
        sandbox.reset(**sizes, noise=bool(noise))
        shown = {"patients": sandbox.patients, "medics": sandbox.medics, "seed": sandbox.seed, "noise": sandbox.noise}
        return JSONResponse(shown)

    async def faults(request: Request) -> Response:
        if request.method == "POST":
            try:
                sandbox.faults.add(await _body(request))
            except (ValueError, TypeError) as exc:
                return JSONResponse({"message": str(exc)}, 400)
        elif request.method == "DELETE":
            sandbox.faults.clear()
        return JSONResponse([rule.to_json() for rule in sandbox.faults.rules])

    async def stats(request: Request) -> Response:
        if request.method == "DELETE":
            sandbox.stats.clear()
        return JSONResponse(sandbox.stats.to_json())

    return [
        Route("/reset", reset, methods=["POST"]),
        Route("/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/stats", stats, methods=["GET", "DELETE"]),
    ]


async def _body(request: Request) -> Any:
    """The JSON body, None when empty; ValueError when it is not JSON."""
    raw = await request.body()
    return json.loads(raw) if raw else None
