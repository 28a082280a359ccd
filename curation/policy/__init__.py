"""Jurisdictions as data: params loading and validation, geofences, the static residency check."""
