"""The accelerated twin (`airgrid sim --fast`): the dispatch core, the twin's physics, the
incident load and the inspection planner in one process on a simulated clock.

- `world`: the zone as the services would know it (registry, layout, nests offline), and the
  dispatch core and coverage keeper built from it the way the dispatch worker builds them.
- `clock_loop`: the simulated clock: physics steps, drone states to the core, incidents to
  the core, its decisions back to the drones, the worker's tick and coverage passes.
- `report`: the run measured into the live twin's SLA report.
- `what_if`: each nest offline in turn, ranked by the SLA share its loss costs.

It sits above the services (it runs the dispatch core), so it lives with the entrypoints.
"""
