"""Where clips come from: TeslaCam folders, SEI telemetry, generic clip+sidecar, the fleet simulator."""
