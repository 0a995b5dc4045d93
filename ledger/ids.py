"""Documented import path: `from ledger.ids import gen_id`. Lives in ledger.domain.ids."""

from .domain.ids import GEN_ID_PREFIX, SIGNATURE_FIELDS, coerce_replicate, collision_gen_id, free_gen_id, gen_id, is_identifier, signature_key, signature_text

__all__ = ["GEN_ID_PREFIX", "SIGNATURE_FIELDS", "coerce_replicate", "collision_gen_id", "free_gen_id", "gen_id", "is_identifier", "signature_key", "signature_text"]
