"""Operations: what spans the domains: the automation sensor, failure alerts, the whole-day job."""
