"""Backend-agnostic steps: (config, backend, ledger) -> an answer of DESIGN section 3."""
