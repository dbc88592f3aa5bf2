"""The stores stfcube writes: the input cube and the fused store (schemas, atomic writes)."""
